"""Postmark webhooks: Basic-auth check and per-RecordType event parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.postmark import parse_postmark_event, verify_postmark_basic_auth
from hub.events import EMAIL_EVENT_KINDS, EmailEventReceived

FIXTURES = Path(__file__).parent / "fixtures" / "postmark"
USER = "postmark-hook"
PASSWORD = "correct horse:battery staple"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def record(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(fixture(name))
    return loaded


def parse(doc: dict[str, Any]) -> EmailEventReceived:
    return parse_postmark_event(json.dumps(doc).encode())


def basic(user: str, password: str) -> str:
    """What an HTTP client sends for https://user:password@host/ (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def digest(doc: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- basic auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [basic(USER, PASSWORD), "basic " + basic(USER, PASSWORD).split()[1], "  " + basic(USER, PASSWORD) + "  "],
    ids=["canonical", "lower-case-scheme", "padded"],
)
def test_good_credentials_pass(authorization: str) -> None:
    verify_postmark_basic_auth(USER, PASSWORD, authorization)


def test_non_ascii_credentials_pass() -> None:
    verify_postmark_basic_auth("crm", "pässwörd", basic("crm", "pässwörd"))


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (basic("someone", PASSWORD), "do not match"),
        (basic(USER, "guess"), "do not match"),
        (basic(USER, PASSWORD + "x"), "do not match"),
        (basic(USER, ""), "do not match"),
        ("Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), "Basic scheme"),
        (base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), "Basic scheme"),
        ("Basic", "Basic scheme"),
        ("Basic ", "Basic scheme"),
        ("Basic not*base64!", "not base64"),
        ("Basic é", "not base64"),
        ("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "not base64"),
        ("Basic " + base64.b64encode(USER.encode()).decode(), "user:password"),
        ("Basic " + "QUFB" * 400, "too long"),
        (None, "missing"),
        ("", "missing"),
    ],
    ids=[
        "wrong-user",
        "wrong-password",
        "longer-password",
        "empty-password",
        "bearer",
        "no-scheme",
        "scheme-only",
        "scheme-and-space",
        "garbage-base64",
        "non-ascii",
        "not-utf8",
        "no-colon",
        "oversized",
        "none",
        "empty",
    ],
)
def test_anything_else_is_refused(authorization: str | None, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_postmark_basic_auth(USER, PASSWORD, authorization)


@pytest.mark.parametrize(("user", "password"), [("", PASSWORD), (USER, "")])
def test_unconfigured_credentials_refuse_everyone(user: str, password: str) -> None:
    with pytest.raises(InvalidSignature, match="not configured"):
        verify_postmark_basic_auth(user, password, basic(user, password))


# --- parsing: one recorded payload per record type -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "delivery",
            {
                "kind": "delivered",
                "provider_event": "Delivery",
                "recipient": "ada@example.com",
                "occurred_at": datetime(2014, 8, 1, 17, 28, 10, 273539, tzinfo=UTC),
                "hub_message_id": 4711,
                "provider_message_id": "883953f4-6105-42a2-a16a-77a8eac79483",
                "reason": "Test delivery webhook details",
                "categories": ("welcome-email",),
                "detail": {"MessageStream": "outbound"},
            },
        ),
        (
            "bounce_hard",
            {
                "kind": "bounced",
                "bounce": "hard",
                "provider_event": "Bounce",
                "recipient": "bounce@example.com",
                "external_id": "bounce:901542550",
                "occurred_at": datetime(2016, 4, 27, 20, 28, 50, 396393, tzinfo=UTC),
                "hub_message_id": 4712,
                "reason": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
                "detail": {
                    "MessageStream": "outbound",
                    "Type": "HardBounce",
                    "TypeCode": 1,
                    "Inactive": True,
                    "CanActivate": True,
                },
            },
        ),
        (
            "bounce_soft",
            {
                "kind": "bounced",
                "bounce": "soft",
                "recipient": "full@example.com",
                "external_id": "bounce:901542551",
                "occurred_at": datetime(2016, 4, 27, 16, 30, 2, 123456, tzinfo=UTC),
                "hub_message_id": None,
            },
        ),
        (
            "spam_complaint",
            {
                "kind": "complained",
                "bounce": None,
                "provider_event": "SpamComplaint",
                "recipient": "erin@example.com",
                "external_id": "bounce:901542552",
                "hub_message_id": 4713,
                "categories": ("newsletter",),
            },
        ),
        (
            "open",
            {
                "kind": "opened",
                "recipient": "ada@example.com",
                "occurred_at": datetime(2026, 9, 29, 10, 5, 0, 249368, tzinfo=UTC),
                "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                "ip": "188.2.95.4",
                "machine_flag": None,
                "detail": {"MessageStream": "outbound", "FirstOpen": True, "Platform": "WebMail", "ReadSeconds": 5},
            },
        ),
        (
            "click",
            {
                "kind": "clicked",
                "url": "https://example.com/click/me",
                "ip": "188.2.95.4",
                "detail": {"MessageStream": "outbound", "ClickLocation": "HTML", "Platform": "Desktop"},
            },
        ),
        (
            "subscription_change_suppress",
            {
                "kind": "unsubscribed",
                "provider_event": "SubscriptionChange",
                "recipient": "john@example.com",
                "occurred_at": datetime(2022, 6, 5, 17, 17, 32, tzinfo=UTC),
                "reason": "ManualSuppression",
                "hub_message_id": None,
                "detail": {
                    "MessageStream": "outbound",
                    "Origin": "Recipient",
                    "SuppressionReason": "ManualSuppression",
                },
            },
        ),
        (
            "subscription_change_resubscribe",
            {
                "kind": "resubscribed",
                "recipient": "john@example.com",
                "occurred_at": datetime(2022, 6, 6, 8, 0, tzinfo=UTC),
                "reason": None,
                "detail": {"MessageStream": "outbound", "Origin": "Customer"},
            },
        ),
    ],
)
def test_recorded_event_is_normalised(name: str, expected: dict[str, Any]) -> None:
    event = parse_postmark_event(fixture(name))

    assert {key: getattr(event, key) for key in expected} == expected
    assert event.source == "postmark"
    assert event.kind in EMAIL_EVENT_KINDS
    assert event.rfc_message_id is None
    assert event.provider_message_id == record(name)["MessageID"]
    assert event.payload == record(name)
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize("name", ["delivery", "open", "click", "subscription_change_suppress"])
def test_records_without_an_id_get_a_stable_digest(name: str) -> None:
    doc = record(name)
    reordered = dict(reversed(list(doc.items())))

    event = parse(doc)

    assert event.external_id == digest(doc) == parse(reordered).external_id
    assert len(event.external_id) <= 200


def test_bounce_without_a_usable_id_gets_a_digest() -> None:
    doc = record("bounce_hard")
    doc["ID"] = "not-a-number"

    assert parse(doc).external_id == digest(doc)


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [
        ("HardBounce", ("bounced", "hard")),
        ("BadEmailAddress", ("bounced", "hard")),
        ("Blocked", ("bounced", "blocked")),
        ("SpamComplaint", ("complained", None)),
        ("Unsubscribe", ("unsubscribed", None)),
        ("Subscribe", ("resubscribed", None)),
        ("SoftBounce", ("bounced", "soft")),
        ("Transient", ("bounced", "soft")),
        ("DnsError", ("bounced", "soft")),
        ("AutoResponder", ("bounced", "soft")),
        ("SomethingNew", ("bounced", "soft")),
        (None, ("bounced", "soft")),
        (["HardBounce"], ("bounced", "soft")),
    ],
)
def test_bounce_type_decides_the_kind(bounce_type: Any, expected: tuple[str, str | None]) -> None:
    doc = record("bounce_hard")
    doc["Type"] = bounce_type

    event = parse(doc)

    assert (event.kind, event.bounce) == expected
    assert event.recipient == "bounce@example.com"


@pytest.mark.parametrize(
    ("suppress", "reason", "expected"),
    [
        (True, "HardBounce", ("bounced", "hard")),
        (True, "SpamComplaint", ("complained", None)),
        (True, "ManualSuppression", ("unsubscribed", None)),
        (True, None, ("unsubscribed", None)),
        (False, None, ("resubscribed", None)),
        (False, "HardBounce", ("resubscribed", None)),
    ],
)
def test_subscription_change_decides_the_kind(suppress: bool, reason: str | None, expected: tuple[str, Any]) -> None:
    doc = record("subscription_change_suppress")
    doc.update(SuppressSending=suppress, SuppressionReason=reason)

    event = parse(doc)

    assert (event.kind, event.bounce) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4711", 4711), (4711, 4711), ("0", None), ("x", None), (str(2**63), None), (None, None)],
)
def test_hub_message_id_metadata(value: Any, expected: int | None) -> None:
    doc = record("open")
    doc["Metadata"]["hub_message_id"] = value

    assert parse(doc).hub_message_id == expected


def test_metadata_that_is_not_an_object_is_ignored() -> None:
    doc = record("open")
    doc["Metadata"] = "hub_message_id=4711"

    assert parse(doc).hub_message_id is None


def test_unknown_record_type_is_kept_as_unknown() -> None:
    doc = {"RecordType": "Inbound2027", "Recipient": "ada@example.com", "ReceivedAt": "2026-09-29T10:05:00Z"}

    event = parse(doc)

    assert (event.kind, event.provider_event, event.recipient) == ("unknown", "Inbound2027", "ada@example.com")
    assert event.occurred_at == datetime(2026, 9, 29, 10, 5, tzinfo=UTC)
    assert event.external_id == digest(doc)


def test_unknown_record_type_without_a_recipient_is_kept() -> None:
    event = parse({"RecordType": "Audit", "ChangedAt": "2026-09-29T10:05:00Z"})

    assert (event.kind, event.recipient) == ("unknown", "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-04-27T16:28:50.3963933-04:00", datetime(2016, 4, 27, 20, 28, 50, 396393, tzinfo=UTC)),
        ("2026-09-29T10:05:00.2493688Z", datetime(2026, 9, 29, 10, 5, 0, 249368, tzinfo=UTC)),
        ("2026-09-29T10:05:00+02:00", datetime(2026, 9, 29, 8, 5, tzinfo=UTC)),
        ("2026-09-29T10:05:00", datetime(2026, 9, 29, 10, 5, tzinfo=UTC)),
    ],
)
def test_postmark_times_become_aware_utc(value: str, expected: datetime) -> None:
    doc = record("open")
    doc["ReceivedAt"] = value

    occurred_at = parse(doc).occurred_at

    assert occurred_at == expected
    assert occurred_at.tzinfo is UTC


def test_long_strings_are_bounded() -> None:
    doc = record("click")
    doc["OriginalLink"] = "https://example.com/" + "a" * 5000
    doc["UserAgent"] = "U" * 5000
    doc["Recipient"] = "a" * 400 + "@example.com"

    event = parse(doc)

    assert event.url is not None and len(event.url) == 2000
    assert event.user_agent is not None and len(event.user_agent) == 500
    assert len(event.recipient) == 320


# --- parsing: malformed bodies -------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff", b'{"RecordType": "Open"', b'{"ReadSeconds": NaN}'])
def test_body_that_is_not_acceptable_json_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="JSON"):
        parse_postmark_event(body)


@pytest.mark.parametrize("body", [b"[]", b"[" + fixture("open") + b"]", b'"Open"', b"null"])
def test_body_must_be_one_object(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="object"):
        parse_postmark_event(body)


def test_nul_character_is_refused_with_its_path() -> None:
    with pytest.raises(MalformedPayload) as raised:
        parse_postmark_event(b'{"RecordType": "Open", "Geo": {"City": "Novi\\u0000Sad"}}')

    assert raised.value.field == "Geo.City"


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("delivery", "DeliveredAt", None),
        ("delivery", "DeliveredAt", "yesterday"),
        ("bounce_hard", "BouncedAt", 1461788930),
        ("open", "ReceivedAt", "2026-13-29T10:05:00Z"),
        ("open", "ReceivedAt", "0001-01-01T00:00:00+01:00"),
        ("subscription_change_suppress", "ChangedAt", ""),
        ("delivery", "Recipient", None),
        ("bounce_hard", "Email", ""),
        ("open", "Recipient", 42),
        ("subscription_change_suppress", "SuppressSending", None),
        ("subscription_change_suppress", "SuppressSending", "true"),
    ],
)
def test_malformed_record_names_the_field(name: str, field: str, value: Any) -> None:
    doc = record(name)
    doc[field] = value

    with pytest.raises(MalformedPayload) as raised:
        parse(doc)

    assert raised.value.field == field
