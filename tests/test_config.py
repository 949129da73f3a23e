"""Settings read from the environment, with clear refusals for impossible values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.config import Settings


def test_stages_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_STAGES", "new, working ,won,lost")
    assert Settings().stages == ("new", "working", "won", "lost")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HUB_STAGES", "working,won", "must include 'new'"),
        ("HUB_DEFAULT_REGION", "XX", "not a region"),
        ("HUB_MAX_BODY_BYTES", "10", "greater than or equal"),
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
