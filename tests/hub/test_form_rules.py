"""Anti-bot rules for public forms: the honeypot and the signed minimum-fill-time token."""

from __future__ import annotations

from typing import Any

import pytest

from hub.forms.rules import FILL_TOKEN_FIELD, HONEYPOT_FIELD, bot_reason, issue_fill_token

SECRET_KEY = "test-secret-key-not-for-production"
SLUG = "contact-us"
NOW = 1_790_676_000
MIN_FILL = 3.0


def reason(fields: dict[str, Any], *, now: float = NOW, slug: str = SLUG) -> str | None:
    return bot_reason(fields, secret_key=SECRET_KEY, source_slug=slug, now=now, min_fill_seconds=MIN_FILL)


def token(issued_at: int, *, slug: str = SLUG, secret_key: str = SECRET_KEY) -> str:
    return issue_fill_token(secret_key, slug, issued_at)


def with_token(value: Any, **fields: Any) -> dict[str, Any]:
    return {"email": "ada@example.com", FILL_TOKEN_FIELD: value, **fields}


@pytest.mark.parametrize(
    ("honeypot", "expected"),
    [
        ("https://cheap-pills.example", "honeypot"),
        ("x", "honeypot"),
        ("", None),
        ("   ", None),
        ("\n", None),
    ],
)
def test_honeypot(honeypot: str, expected: str | None) -> None:
    assert reason({"email": "ada@example.com", HONEYPOT_FIELD: honeypot}) == expected


def test_honeypot_wins_over_a_valid_token() -> None:
    fields = with_token(token(NOW - 60), **{HONEYPOT_FIELD: "spam"})

    assert reason(fields) == "honeypot"


def test_no_token_is_no_evidence_of_a_bot() -> None:
    """A static page cannot embed a token; its posts are judged by the other checks."""
    assert reason({"email": "ada@example.com"}) is None


def test_empty_token_is_no_evidence_of_a_bot() -> None:
    """The page's token fetch failed (blocked, offline): a person must not be filed as spam."""
    assert reason(with_token("")) is None


@pytest.mark.parametrize(
    ("seconds_to_fill", "expected"),
    [
        (0, "filled_too_fast"),
        (1, "filled_too_fast"),
        (2.99, "filled_too_fast"),
        (3, None),
        (45, None),
        (3 * 86_400, None),  # a tab left open for days is a person, not a bot
        (400 * 86_400, None),
    ],
)
def test_fill_time(seconds_to_fill: float, expected: str | None) -> None:
    assert reason(with_token(token(NOW)), now=NOW + seconds_to_fill) == expected


def test_token_from_the_future_is_too_fast() -> None:
    assert reason(with_token(token(NOW + 120))) == "filled_too_fast"


def _tamper(value: str) -> str:
    issued, _, signature = value.partition(".")
    return f"{issued}.{'0' if signature[0] != '0' else '1'}{signature[1:]}"


@pytest.mark.parametrize(
    "value",
    [
        _tamper(token(NOW - 60)),
        f"{NOW - 600}.{token(NOW - 60).partition('.')[2]}",  # older timestamp, signature of another
        token(NOW - 60, slug="other-form"),
        token(NOW - 60, secret_key="another-key"),
        token(NOW - 60).partition(".")[2],
        f"{NOW - 60}.",
        f"{NOW - 60}",
        ".",
        "abc.def",
        f"-{NOW}.{token(NOW).partition('.')[2]}",
        f"{NOW}.5.{token(NOW).partition('.')[2]}",
        f"1e9.{token(NOW).partition('.')[2]}",
        f" {NOW - 60}.{token(NOW - 60).partition('.')[2]}",
        f"{NOW - 60}.{token(NOW - 60).partition('.')[2].upper()}",
    ],
)
def test_forged_or_malformed_token_is_invalid(value: str) -> None:
    assert reason(with_token(value)) == "fill_token_invalid"


@pytest.mark.parametrize(
    "value",
    [
        "².0123456789abcdef0123456789abcdef",  # str.isdigit() says yes, int() says no
        "١٧٩٠٦٧٥٠٠٠.0123456789abcdef0123456789abcdef",  # Arabic-Indic digits
        "9" * 5000 + ".0123456789abcdef0123456789abcdef",  # past int()'s 4300-digit limit
        f"{NOW - 60}.é",  # hmac.compare_digest refuses non-ASCII str
        f"{NOW - 60}.{'a' * 31}é",
    ],
    ids=["superscript-digit", "arabic-indic-digits", "huge-number", "non-ascii-signature", "non-ascii-same-length"],
)
def test_hostile_token_is_invalid_not_a_crash(value: str) -> None:
    assert reason(with_token(value)) == "fill_token_invalid"


@pytest.mark.parametrize("value", [NOW - 60, ["x"], {"ts": NOW}, 1.5, True])
def test_non_string_token_is_invalid(value: object) -> None:
    assert reason(with_token(value)) == "fill_token_invalid"


def test_valid_token_is_bound_to_its_form() -> None:
    value = token(NOW - 60)

    assert reason(with_token(value), slug=SLUG) is None
    assert reason(with_token(value), slug="other-form") == "fill_token_invalid"


def test_issued_token_carries_its_issue_time() -> None:
    issued, _, signature = token(NOW).partition(".")

    assert issued == str(NOW)
    assert len(signature) == 32
    assert token(NOW) == token(NOW)
    assert token(NOW) != token(NOW + 1)


@pytest.mark.parametrize(
    ("honeypot", "expected"),
    [
        (["", ""], None),  # a form holding the field twice, both left empty, as every person leaves them
        (["", " "], None),
        (False, None),  # a JSON checkbox left unticked
        ({}, None),
        (["", "https://cheap-pills.example"], "honeypot"),  # content in any copy counts
        ({"a": 1}, "honeypot"),
        (True, "honeypot"),
        (0, "honeypot"),
    ],
)
def test_a_honeypot_holding_nothing_in_any_shape_is_empty(honeypot: Any, expected: str | None) -> None:
    assert reason({"email": "ada@example.com", HONEYPOT_FIELD: honeypot}) == expected


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["", token(NOW - 60)], None),  # an empty placeholder, and the fetched token appended
        ([token(NOW - 60), token(NOW - 60)], None),  # the token field twice
        (["", ""], None),  # placeholders only: no token
        (["", token(NOW)], "filled_too_fast"),
        (["", "forged.0000"], "fill_token_invalid"),
        ([token(NOW), token(NOW - 60)], None),  # a person is shown by any valid, old enough token
    ],
)
def test_a_fill_token_field_posted_more_than_once(tokens: list[str], expected: str | None) -> None:
    assert reason(with_token(tokens)) == expected
