"""Settings of the hub, read from the environment (prefix ``HUB_``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal

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
    default_region: str = "US"

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    form_rate_per_ip: int = Field(default=20, ge=1, description="form posts per IP per window")
    form_rate_per_source: int = Field(default=600, ge=1, description="form posts per source per window")
    form_rate_window_seconds: int = Field(default=60, ge=1)
    form_min_fill_seconds: float = Field(default=3.0, ge=0)
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

    rules_file: Path | None = None
    """The rules file (warmth, routing, SLAs, pipeline); unset: the default shipped in hub/policy/."""
    rules_check_seconds: float = Field(default=2.0, ge=0, description="how often a changed rules file is noticed")
    db_pool_size: int = Field(default=10, ge=1)
    log_level: str = "INFO"

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
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `HUB_X=` (e.g. compose's ${HUB_X:-}) means "not configured", not "an empty secret".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("twilio_media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("twilio_fallback_number", "twilio_caller_id")
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
    def is_sqlite(self) -> bool:
        """True when the database is a SQLite file (the embedded mode)."""
        return self.database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The signing key: HUB_SECRET_KEY, else one generated once and kept in secret_key_file."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_key_file
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key
