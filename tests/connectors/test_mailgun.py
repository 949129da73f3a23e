"""Mailgun webhooks: HMAC signature verification and JSON event parsing."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.mailgun import MailgunSignature, parse_mailgun_webhook, verify_mailgun_signature
from hub.events import EMAIL_EVENT_KINDS, EmailEventReceived

FIXTURES = Path(__file__).parent / "fixtures" / "mailgun"
# The protocols.md example key; the recorded fixtures are signed with it too.
SIGNING_KEY = "TEST_WEBHOOK_SIGNING_KEY"
MAX_AGE = 900
JSON = "application/json"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(fixture(name))
    return loaded


def parse(doc: dict[str, Any]) -> EmailEventReceived:
    return parse_mailgun_webhook(json.dumps(doc).encode(), JSON)[1]


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    """As Mailgun documents it: hex HMAC-SHA256(signing key, timestamp + token)."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


# --- signature -----------------------------------------------------------------------------------

VECTOR = MailgunSignature(
    timestamp="1770920772",
    token="e0b5477167110d68991efc6b9f89f0a11066af27834600e123",
    signature="e14eb39f974dbffb3ac3a33de5c2ff8c63147c65707d9844d991ab1306b6f294",
)


def test_published_example_verifies() -> None:
    assert mailgun_signature(SIGNING_KEY, VECTOR.timestamp, VECTOR.token) == VECTOR.signature
    verify_mailgun_signature(SIGNING_KEY, VECTOR, now=1770920772 + 30, max_age_seconds=MAX_AGE)


def test_upper_case_hex_is_the_same_signature() -> None:
    upper = MailgunSignature(VECTOR.timestamp, VECTOR.token, VECTOR.signature.upper())

    verify_mailgun_signature(SIGNING_KEY, upper, now=1770920772, max_age_seconds=MAX_AGE)


@pytest.mark.parametrize("name", sorted(path.stem for path in FIXTURES.glob("*.json")))
def test_recorded_webhook_verifies_with_its_own_signature(name: str) -> None:
    signature, event = parse_mailgun_webhook(fixture(name), JSON)

    verify_mailgun_signature(SIGNING_KEY, signature, now=event.occurred_at.timestamp(), max_age_seconds=MAX_AGE)


def _flip_last_hex_digit(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("key", "sig"),
    [
        (SIGNING_KEY, MailgunSignature(VECTOR.timestamp, VECTOR.token, _flip_last_hex_digit(VECTOR.signature))),
        ("another-signing-key", VECTOR),
        (SIGNING_KEY, MailgunSignature(VECTOR.timestamp, VECTOR.token[::-1], VECTOR.signature)),
        (SIGNING_KEY, MailgunSignature("1770920773", VECTOR.token, VECTOR.signature)),
        (SIGNING_KEY, MailgunSignature(VECTOR.timestamp, VECTOR.token, VECTOR.signature[:32])),
        (SIGNING_KEY, MailgunSignature(VECTOR.timestamp, VECTOR.token, "é" * 64)),
    ],
    ids=["flipped", "other-key", "other-token", "other-timestamp", "truncated", "non-ascii"],
)
def test_forged_signature_is_refused(key: str, sig: MailgunSignature) -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_mailgun_signature(key, sig, now=1770920772, max_age_seconds=MAX_AGE)


@pytest.mark.parametrize(
    ("now", "message"),
    [(1770920772 + MAX_AGE + 1, "s old"), (1770920772 - MAX_AGE - 1, "in the future")],
    ids=["stale", "future"],
)
def test_timestamp_outside_the_window_is_refused(now: float, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_mailgun_signature(SIGNING_KEY, VECTOR, now=now, max_age_seconds=MAX_AGE)


@pytest.mark.parametrize("now", [1770920772 + MAX_AGE, 1770920772 - MAX_AGE])
def test_timestamp_at_the_edge_of_the_window_is_accepted(now: float) -> None:
    verify_mailgun_signature(SIGNING_KEY, VECTOR, now=now, max_age_seconds=MAX_AGE)


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        (MailgunSignature("", VECTOR.token, VECTOR.signature), "required"),
        (MailgunSignature(VECTOR.timestamp, "", VECTOR.signature), "required"),
        (MailgunSignature(VECTOR.timestamp, VECTOR.token, ""), "required"),
        (MailgunSignature("1770920772.5", VECTOR.token, VECTOR.signature), "Unix seconds"),
        (MailgunSignature("soon", VECTOR.token, VECTOR.signature), "Unix seconds"),
    ],
)
def test_incomplete_signature_is_refused(sig: MailgunSignature, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_mailgun_signature(SIGNING_KEY, sig, now=1770920772, max_age_seconds=MAX_AGE)


# --- parsing: one recorded payload per event type ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "delivered",
            {
                "kind": "delivered",
                "provider_event": "delivered",
                "recipient": "ada@example.com",
                "hub_message_id": 4711,
                "reason": "OK",
                "bounce": None,
                "categories": ("welcome",),
                "detail": {"delivery_status_code": 250},
            },
        ),
        (
            "failed_permanent",
            {
                "kind": "bounced",
                "provider_event": "failed",
                "bounce": "hard",
                "recipient": "invalid@example.com",
                "hub_message_id": 4712,
                "reason": "5.1.1 The email account that you tried to reach does not exist.",
                "detail": {"severity": "permanent", "reason": "bounce", "delivery_status_code": 550},
            },
        ),
        (
            "failed_temporary",
            {
                "kind": "deferred",
                "bounce": None,
                "recipient": "full@example.com",
                "hub_message_id": None,
                "reason": "4.2.2 The email account that you tried to reach is over quota.",
                "detail": {"severity": "temporary", "reason": "generic", "delivery_status_code": 452},
            },
        ),
        (
            "opened_bot_apple",
            {
                "kind": "opened",
                "machine_flag": "mailgun:bot=apple",
                "ip": "17.58.0.1",
                "user_agent": "Mozilla/5.0",
                "hub_message_id": 4711,
                "detail": {"bot": "apple", "client_type": "unknown", "device_type": "unknown"},
            },
        ),
        (
            "clicked",
            {
                "kind": "clicked",
                "url": "https://example.com/pricing",
                "machine_flag": None,
                "ip": "203.0.113.7",
                "detail": {"client_type": "browser", "device_type": "desktop"},
            },
        ),
        (
            "unsubscribed",
            {"kind": "unsubscribed", "recipient": "frank@example.com", "categories": ("newsletter",), "url": None},
        ),
        ("complained", {"kind": "complained", "recipient": "erin@example.com", "hub_message_id": 4713, "detail": {}}),
    ],
)
def test_recorded_event_is_normalised(name: str, expected: dict[str, Any]) -> None:
    signature, event = parse_mailgun_webhook(fixture(name), JSON)
    data = document(name)["event-data"]

    assert {key: getattr(event, key) for key in expected} == expected
    assert event.source == "mailgun"
    assert event.kind in EMAIL_EVENT_KINDS
    assert event.external_id == data["id"]
    assert event.rfc_message_id == event.provider_message_id == data["message"]["headers"]["message-id"]
    assert event.occurred_at == datetime.fromtimestamp(data["timestamp"], UTC)
    assert event.payload == data
    assert signature == MailgunSignature(**document(name)["signature"])


def test_delivered_event_time_keeps_its_microseconds() -> None:
    event = parse(document("delivered"))

    assert event.occurred_at == datetime(2026, 9, 29, 10, 0, 10, 153125, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_name", "severity", "reason", "expected"),
    [
        ("accepted", None, None, ("processed", None)),
        ("rejected", None, None, ("dropped", None)),
        ("failed", "permanent", "bounce", ("bounced", "hard")),
        ("failed", "permanent", "suppress-bounce", ("dropped", None)),
        ("failed", "permanent", "suppress-unsubscribe", ("dropped", None)),
        ("failed", "permanent", "suppress-complaint", ("dropped", None)),
        ("failed", "permanent", ["suppress-bounce"], ("bounced", "hard")),
        ("failed", "temporary", "espblock", ("deferred", None)),
        ("failed", None, None, ("unknown", None)),
        ("failed", ["permanent"], None, ("unknown", None)),
        ("stored", None, None, ("unknown", None)),
        ("list_member_uploaded", None, None, ("unknown", None)),
    ],
)
def test_event_and_severity_decide_the_kind(
    event_name: str, severity: Any, reason: Any, expected: tuple[str, str | None]
) -> None:
    doc = document("failed_permanent")
    data = doc["event-data"]
    data.update(event=event_name, severity=severity, reason=reason)

    event = parse(doc)

    assert (event.kind, event.bounce) == expected
    assert event.provider_event == event_name


def test_unknown_event_without_a_recipient_is_kept() -> None:
    doc = document("complained")
    doc["event-data"] = {"event": "list_uploaded", "id": "Lst0001", "timestamp": 1790676800.0}

    event = parse(doc)

    assert (event.kind, event.recipient, event.rfc_message_id) == ("unknown", "", None)


def test_failure_reason_falls_back_to_mailguns_reason() -> None:
    doc = document("failed_permanent")
    del doc["event-data"]["delivery-status"]

    assert parse(doc).reason == "bounce"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4711", 4711), (4711, 4711), ("0", None), ("-1", None), ("x", None), (str(2**63), None), (True, None)],
)
def test_hub_message_id_user_variable(value: Any, expected: int | None) -> None:
    doc = document("opened_bot_apple")
    doc["event-data"]["user-variables"]["hub_message_id"] = value

    assert parse(doc).hub_message_id == expected


@pytest.mark.parametrize("bot", ["", None, 7])
def test_no_bot_means_no_machine_flag(bot: Any) -> None:
    doc = document("opened_bot_apple")
    doc["event-data"]["client-info"]["bot"] = bot

    assert parse(doc).machine_flag is None


def test_message_id_in_angle_brackets_is_unwrapped() -> None:
    doc = document("delivered")
    doc["event-data"]["message"]["headers"]["message-id"] = "<20260929.1@mg.example.com>"

    event = parse(doc)

    assert event.rfc_message_id == event.provider_message_id == "20260929.1@mg.example.com"


def test_missing_nested_objects_read_as_absent() -> None:
    doc = document("opened_bot_apple")
    for key in ("message", "client-info", "user-variables", "tags"):
        doc["event-data"][key] = "junk"

    event = parse(doc)

    assert (event.rfc_message_id, event.user_agent, event.hub_message_id, event.categories) == (None, None, None, ())


def test_long_strings_are_bounded() -> None:
    doc = document("clicked")
    doc["event-data"]["url"] = "https://example.com/" + "a" * 5000
    doc["event-data"]["client-info"]["user-agent"] = "U" * 5000
    doc["event-data"]["client-info"]["bot"] = "b" * 500

    event = parse(doc)

    assert event.url is not None and len(event.url) == 2000
    assert event.user_agent is not None and len(event.user_agent) == 500
    assert event.machine_flag is not None and len(event.machine_flag) <= 100


# --- parsing: malformed bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""],
)
def test_legacy_and_other_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(MalformedPayload, match="mailgun: expected application/json"):
        parse_mailgun_webhook(fixture("delivered"), content_type)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_type_with_parameters_is_accepted(content_type: str) -> None:
    assert parse_mailgun_webhook(fixture("delivered"), content_type)[1].kind == "delivered"


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff", b'{"signature": {', b'{"a": NaN}'])
def test_body_that_is_not_acceptable_json_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="JSON"):
        parse_mailgun_webhook(body, JSON)


@pytest.mark.parametrize("body", [b"[]", b'"delivered"', b"null"])
def test_body_must_be_an_object(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="object"):
        parse_mailgun_webhook(body, JSON)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target = doc
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target = doc
        for key in parents:
            target = target[key]
        del target[last]

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_delete("signature"), "signature"),
        (_set("signature", "e14eb39f"), "signature"),
        (_delete("signature/token"), "signature.token"),
        (_set("signature/timestamp", None), "signature.timestamp"),
        (_set("signature/signature", ["e14eb39f"]), "signature.signature"),
        (_set("signature/token", "t" * 201), "signature.token"),
        (_delete("event-data"), "event-data"),
        (_set("event-data", []), "event-data"),
        (_delete("event-data/id"), "event-data.id"),
        (_set("event-data/id", ""), "event-data.id"),
        (_set("event-data/id", 42), "event-data.id"),
        (_set("event-data/id", "x" * 201), "event-data.id"),
        (_delete("event-data/timestamp"), "event-data.timestamp"),
        (_set("event-data/timestamp", "1790676010.15"), "event-data.timestamp"),
        (_set("event-data/timestamp", True), "event-data.timestamp"),
        (_set("event-data/timestamp", 1e20), "event-data.timestamp"),
        (_delete("event-data/recipient"), "event-data.recipient"),
        (_set("event-data/recipient", ""), "event-data.recipient"),
    ],
)
def test_malformed_payload_names_the_field(change: Callable[[dict[str, Any]], None], field: str) -> None:
    doc = copy.deepcopy(document("delivered"))
    change(doc)

    with pytest.raises(MalformedPayload) as raised:
        parse_mailgun_webhook(json.dumps(doc).encode(), JSON)

    assert raised.value.field == field


def test_numeric_signature_timestamp_is_read_as_its_digits() -> None:
    doc = document("delivered")
    doc["signature"]["timestamp"] = int(doc["signature"]["timestamp"])

    signature, _ = parse_mailgun_webhook(json.dumps(doc).encode(), JSON)

    assert signature.timestamp == "1790676010"
