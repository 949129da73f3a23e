"""Settings read from the environment, with clear refusals for impossible values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.app import create_app
from hub.config import Settings


def test_a_blank_rules_file_variable_means_the_shipped_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_RULES_FILE", " ")
    assert Settings().rules_file is None
    monkeypatch.setenv("HUB_RULES_FILE", "/etc/hub/rules.yaml")
    assert str(Settings().rules_file) == "/etc/hub/rules.yaml"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HUB_RULES_CHECK_SECONDS", "-1", "greater than or equal"),
        ("HUB_DEFAULT_REGION", "XX", "not a region"),
        ("HUB_MAX_BODY_BYTES", "10", "greater than or equal"),
        ("HUB_SEND_DOMAIN_RATES", "gmail.com=0", "gmail.com: the rate must be more than 0"),
        ("HUB_SEND_DOMAIN_RATES", "gmail.com", "write domain=messages_per_second"),
        ("HUB_SEND_RETRY_MINUTES", "5,-1", "each at least 1"),
        ("HUB_TASK_ESCALATION_MINUTES", "0,60,120", "two delays"),
        ("HUB_CALLING_HOURS", "20:00-09:00", "the end must be after the start"),
        ("HUB_CALLING_HOURS", "09:00-24:30", "HH:MM-HH:MM"),
        ("HUB_DEFAULT_TIME_ZONE", "Mars/Olympus", "not an IANA time zone"),
    ],
)
def test_impossible_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_region_is_upper_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DEFAULT_REGION", "de")
    assert Settings().default_region == "DE"


def test_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    monkeypatch.setenv("HUB_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    first = Settings().resolved_secret_key()
    assert len(first) >= 48
    assert Settings().resolved_secret_key() == first
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o077 == 0


def test_secret_key_fallbacks_are_read_from_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SECRET_KEY", "current-key")
    monkeypatch.setenv("HUB_SECRET_KEY_FALLBACKS", " older-key , oldest-key,, current-key,older-key ")
    settings = Settings()
    # In the order given, without blanks, repeats or the current key; never shown in a repr.
    assert settings.resolved_secret_key_fallbacks() == ("older-key", "oldest-key")
    assert "older-key" not in repr(settings)
    monkeypatch.delenv("HUB_SECRET_KEY_FALLBACKS")
    assert Settings().resolved_secret_key_fallbacks() == ()
    # Given in code, blanks are dropped too: an empty key would let anyone sign.
    assert Settings(secret_key_fallbacks=["", "  ", " older-key "]).resolved_secret_key_fallbacks() == ("older-key",)


def test_blank_provider_settings_mean_not_configured() -> None:
    settings = Settings(
        twilio_auth_token="",
        twilio_account_sid=" ",
        sendgrid_webhook_public_key="",
        mailgun_signing_key="",
        postmark_webhook_user="",
        postmark_webhook_password="",
        twilio_fallback_number="",
        redis_url="",
    )
    assert settings.twilio_auth_token is None
    assert settings.twilio_account_sid is None
    assert settings.sendgrid_webhook_public_key is None
    assert settings.mailgun_signing_key is None
    assert settings.postmark_webhook_password is None
    assert settings.twilio_fallback_number is None
    assert settings.redis_url is None


def test_twilio_numbers_must_be_e164_and_hosts_are_a_list() -> None:
    settings = Settings(
        twilio_fallback_number="+1 415 555 0199", twilio_media_hosts="api.twilio.com, http://127.0.0.1:9"
    )
    assert settings.twilio_fallback_number == "+14155550199"
    assert settings.twilio_media_hosts == ("api.twilio.com", "http://127.0.0.1:9")
    with pytest.raises(ValidationError, match=r"E\.164"):
        Settings(twilio_fallback_number="4155550199")
    with pytest.raises(ValidationError):
        Settings(twilio_validation="off")


def test_a_sendgrid_key_that_cannot_verify_anything_stops_start_up() -> None:
    with pytest.raises(ValueError, match="HUB_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(Settings(sendgrid_webhook_public_key="not-a-key"))


def test_a_blank_secret_key_means_the_key_file_not_an_empty_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SECRET_KEY", "")  # compose's ${HUB_SECRET_KEY:-}
    monkeypatch.setenv("HUB_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    settings = Settings()
    assert settings.secret_key is None
    key = settings.resolved_secret_key()
    assert len(key) >= 32 and (tmp_path / "secret.key").read_text().strip() == key


def test_an_empty_key_file_is_refused_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.key").write_text("\n")
    monkeypatch.setenv("HUB_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    with pytest.raises(ValueError, match="holds no key"):
        Settings().resolved_secret_key()
    assert (tmp_path / "secret.key").read_text() == "\n"  # not replaced: it may be what sealed the stored secrets


def test_the_log_level_is_one_of_pythons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_LOG_LEVEL", " warning ")
    assert Settings().log_level == "WARNING"
    monkeypatch.setenv("HUB_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()
