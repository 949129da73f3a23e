"""Settings of the hub, read from the environment (prefix ``HUB_``)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the hub; documented one by one in docs/CONFIGURATION.md."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=None, extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/hub.db"
    redis_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path("./var/secret.key")
    secret_key_fallbacks: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Retired secret keys, still accepted when reading what they signed or sealed, never used to sign or seal:
    a key can be rotated without breaking the links in mail already sent (see ``resolved_secret_key_fallbacks``)."""
    default_region: str = "US"

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    ingest_mode: Literal["inline", "deferred"] = "inline"
    """inline: a webhook's event is applied (contact, timeline, scoring, routing) before its 2xx;
    deferred: it is stored with group commit and the worker applies it (``apply_accepted_events``)."""
    apply_batch_size: int = Field(default=500, ge=1, le=5000, description="accepted events per apply transaction")
    accept_commits_in_flight: int = Field(
        default=2, ge=1, le=8, description="deferred mode: group commits an API process runs at once (PostgreSQL)"
    )
    form_rate_per_ip: int = Field(default=20, ge=1, description="form posts per IP per window")
    form_rate_per_source: int = Field(default=600, ge=1, description="form posts per source per window")
    form_rate_window_seconds: int = Field(default=60, ge=1)
    form_min_fill_seconds: float = Field(default=3.0, ge=0)
    form_source_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how long a process keeps a form source's settings (0: read them on every post)",
    )
    spam_retention_days: int = Field(default=30, ge=1)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_validation: Literal["enforce", "log"] = "enforce"
    twilio_fallback_number: str | None = None
    twilio_caller_id: str | None = None
    twilio_dial_timeout_seconds: int = Field(default=20, ge=5, le=600)
    twilio_routing_budget_seconds: float = Field(default=4.0, gt=0, le=10)
    twilio_media_hosts: Annotated[tuple[str, ...], NoDecode] = ("api.twilio.com",)
    twilio_voicemail_max_seconds: int = Field(default=120, ge=5, le=3600)

    email_webhook_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="batches of events")
    sendgrid_webhook_public_key: str | None = None
    sendgrid_max_age_seconds: int = Field(default=86_400, ge=60)
    mailgun_signing_key: SecretStr | None = None
    mailgun_max_age_seconds: int = Field(default=30_600, ge=60)
    postmark_webhook_user: str | None = None
    postmark_webhook_password: SecretStr | None = None

    open_collapse_seconds: int = Field(default=60, ge=0, description="pixel hits of one message within this merge")
    machine_open_seconds: float = Field(default=10.0, ge=0, description="opens this soon after delivery are machines")
    scanner_click_seconds: float = Field(default=10.0, ge=0, description="window of a link scanner's burst of clicks")

    smtp_host: str | None = None
    """The relay mail goes through; unset: mail is captured in the local outbox (GET /api/outbox)."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_validate_certs: bool = True
    smtp_pool_size: int = Field(default=4, ge=1, le=64, description="SMTP connections kept open per worker")
    smtp_messages_per_connection: int = Field(default=100, ge=1, description="then the connection is renewed")
    mail_from: str = "The hub <hub@example.com>"
    """Default From of every email; a sequence may set its own sender."""
    company_name: str = "Example Inc."
    """Shown in emails (``{{ company.name }}``) next to the postal address the law asks for."""
    company_address: str = ""
    unsubscribe_mailto: str | None = None
    """The mailto: of List-Unsubscribe; unset: ``unsubscribe@`` the From domain."""
    send_rate_per_second: float = Field(default=50.0, gt=0, description="all mail, per worker process")
    send_domain_rates: Annotated[dict[str, float], NoDecode] = {}
    """Per recipient domain, e.g. ``gmail.com=5,yahoo.com=2`` (messages per second)."""
    send_batch_size: int = Field(default=200, ge=1, le=5000)
    send_retry_minutes: Annotated[tuple[int, ...], NoDecode] = (1, 5, 15, 60, 240)
    """Backoff after a 4xx or a dropped connection; after the last one the message fails."""
    sending_timeout_seconds: int = Field(default=300, ge=1)
    """A message ``sending`` for longer than this was being handed over when its worker died: ``unknown``."""
    frequency_cap: int = Field(default=1, ge=0, description="marketing emails per contact per window; 0: no cap")
    frequency_cap_hours: float = Field(default=24.0, gt=0)
    email_track_opens: bool = Field(
        default=True, description="open pixel in tracked emails; false wins over every sequence's track_opens"
    )
    email_track_clicks: bool = Field(
        default=True, description="click redirects in tracked emails; false wins over every sequence's track_clicks"
    )
    default_time_zone: str = "UTC"
    default_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code of deals created without one, and of the money columns in reports."""
    """A contact's zone when it has none, no phone to infer one from, and no owner team with a zone."""
    breaker_min_sends: int = Field(default=20, ge=1)
    breaker_error_rate: float = Field(default=0.3, gt=0, le=1)
    breaker_window_minutes: int = Field(default=15, ge=1)
    calling_hours: str = "09:00-20:00"
    """When callbacks may be scheduled, in the contact's local time."""
    callback_slot_minutes: int = Field(default=15, ge=1, le=240)
    missed_call_callback_minutes: int = Field(default=30, ge=1)
    task_reminder_minutes: int = Field(default=10, ge=0, description="reminder this long before a task is due")
    task_grace_minutes: int = Field(default=15, ge=0, description="a task is overdue this long after it was due")
    task_escalation_minutes: Annotated[tuple[int, ...], NoDecode] = (0, 60)
    """After becoming overdue: when the rep's manager, then the head of sales, are told."""
    alert_cooldown_minutes: int = Field(default=30, ge=0, description='one "engaged now" alert per contact per window')
    twilio_sms_from: str | None = None
    """The number reminders and alerts are texted from; unset: no SMS."""
    twilio_api_base: str = "https://api.twilio.com"
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    outbound_private_networks: bool = False
    """Let webhooks, alerts and provider calls connect to private, loopback and link-local addresses (a receiver on
    the intranet); off, only to public ones and to the URL hosts localhost, 127.0.0.1 and ::1."""
    rules_file: Path | None = None
    """The rules file (warmth, routing, SLAs, pipeline); unset: the default shipped in hub/policy/."""
    rules_check_seconds: float = Field(default=2.0, ge=0, description="how often a changed rules file is noticed")
    db_pool_size: int = Field(default=10, ge=1)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, description="wait for a connection, then 503")
    import_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, description="largest CSV file an import takes")
    import_batch_size: int = Field(default=500, ge=1, le=5000, description="CSV rows per import transaction")
    import_draft_days: int = Field(
        default=7, ge=1, le=3650, description="days an uploaded import may stay a draft before its file is deleted"
    )
    login_max_failures: int = Field(default=5, ge=1, description="consecutive failed logins that lock an account")
    login_lockout_minutes: int = Field(default=15, ge=1, description="how long a locked account stays locked")
    login_rate_per_ip: int = Field(default=30, ge=1, description="login attempts per client IP per minute")
    session_idle_minutes: int = Field(default=720, ge=1, description="a dashboard session unused this long ends")
    session_max_days: int = Field(default=30, ge=1, description="a dashboard session ends this long after login")
    ui_live_poll_seconds: float = Field(
        default=2.0, gt=0, le=60, description="how often a dashboard live stream (/ui/live) looks for new alerts"
    )
    ui_live_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=300, description="a quiet live stream sends a comment this often (keeps proxies open)"
    )
    ui_live_max_seconds: float = Field(
        default=300.0, gt=0, description="a live stream ends after this long; the browser reconnects (bounds shutdown)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (use an ISO code such as US, GB, DE)")
        return region

    @field_validator(
        "redis_url",
        "twilio_account_sid",
        "twilio_auth_token",
        "sendgrid_webhook_public_key",
        "mailgun_signing_key",
        "postmark_webhook_user",
        "postmark_webhook_password",
        "rules_file",
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "unsubscribe_mailto",
        "twilio_sms_from",
        "secret_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `HUB_X=` (e.g. compose's ${HUB_X:-}) means "not configured", not "an empty secret".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("twilio_media_hosts", "secret_key_fallbacks", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("send_domain_rates", mode="before")
    @classmethod
    def _domain_rates(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            domain, sep, rate = part.partition("=")
            if not sep or not domain.strip():
                raise ValueError(f"{part!r}: write domain=messages_per_second, e.g. gmail.com=5")
            try:
                rates[domain.strip().lower()] = float(rate)
            except ValueError:
                raise ValueError(f"{part!r}: the rate must be a number of messages per second") from None
        return rates

    @field_validator("send_domain_rates")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        for domain, rate in value.items():
            if not rate > 0:
                raise ValueError(f"{domain}: the rate must be more than 0 messages per second")
        return value

    @field_validator("send_retry_minutes", "task_escalation_minutes", mode="before")
    @classmethod
    def _minutes_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(p) for p in value.replace(" ", "").split(",") if p)
        return value

    @field_validator("send_retry_minutes")
    @classmethod
    def _retry_schedule(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(minutes < 1 for minutes in value):
            raise ValueError("give one or more delays in whole minutes, each at least 1, e.g. 1,5,15,60,240")
        return value

    @field_validator("task_escalation_minutes")
    @classmethod
    def _ladder(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) != 2 or any(minutes < 0 for minutes in value) or value[1] < value[0]:
            raise ValueError(
                "give two delays in minutes after a task is overdue: the manager's, then the head of sales' (e.g. 0,60)"
            )
        return value

    @field_validator("default_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @field_validator("calling_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)", value.strip()):
            raise ValueError("write HH:MM-HH:MM, e.g. 09:00-20:00")
        start, end = value.strip().split("-")
        if start >= end:
            raise ValueError("the end must be after the start (the contact's night is never allowed)")
        return value.strip()

    @field_validator("twilio_fallback_number", "twilio_caller_id", "twilio_sms_from")
    @classmethod
    def _e164_fallback(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            raise ValueError("must be a phone number in E.164 form, e.g. +14155550100") from None
        if not phonenumbers.is_valid_number(number):
            raise ValueError("must be a valid phone number in E.164 form, e.g. +14155550100")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @property
    def smtp_configured(self) -> bool:
        """True when mail goes to a relay; otherwise it is captured in the local outbox."""
        return self.smtp_host is not None

    @property
    def is_sqlite(self) -> bool:
        """True when the database is a SQLite file (the embedded mode)."""
        return self.database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The signing key: HUB_SECRET_KEY, else one generated once and kept in secret_key_file."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_key_file
        if path.exists():
            key = path.read_text().strip()
            if not key:
                # An empty key would sign and seal with nothing: refused, never used (nor replaced: the file's old
                # key may be what sealed the stored secrets).
                raise ValueError(
                    f"{path} holds no key: restore it, or delete it to have a new one made "
                    "(links already sent and sealed secrets then stop working)"
                )
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key

    def resolved_secret_key_fallbacks(self) -> tuple[str, ...]:
        """The retired keys still accepted, in the order given, without the current key or repeats."""
        current = self.resolved_secret_key()
        given = (value.get_secret_value().strip() for value in self.secret_key_fallbacks)
        return tuple(key for key in dict.fromkeys(given) if key and key != current)


def static_dir() -> Path:
    """The dashboard's CSS, scripts and vendored front-end libraries (hub/static, shipped in the package)."""
    return Path(__file__).resolve().parent / "static"


def templates_dir() -> Path:
    """``templates/`` (pages and emails): next to the package in a source checkout, else under the working
    directory (the container image copies it to /app/templates)."""
    beside = Path(__file__).resolve().parent.parent / "templates"
    return beside if beside.is_dir() else Path.cwd() / "templates"
