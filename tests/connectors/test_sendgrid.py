"""SendGrid Event Webhook: ECDSA signature verification and event-batch parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.sendgrid import load_sendgrid_public_key, parse_sendgrid_events, verify_sendgrid_signature
from hub.events import EMAIL_EVENT_KINDS, EmailEventReceived
from tests.provider_vectors import PUBLISHED_KEY, PUBLISHED_PAYLOAD, PUBLISHED_SIGNATURE, PUBLISHED_TIMESTAMP

FIXTURES = Path(__file__).parent / "fixtures" / "sendgrid"
MAX_AGE = 300


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def fixture_event(name: str) -> dict[str, Any]:
    (event,) = json.loads(fixture(name))
    assert isinstance(event, dict)
    return event


def parse_one(event: dict[str, Any]) -> EmailEventReceived:
    (parsed,) = parse_sendgrid_events(json.dumps([event]).encode())
    return parsed


def spki_base64(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    """The public half as SendGrid shows it: base64 of DER SubjectPublicKeyInfo, no PEM armour."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """As SendGrid signs: ECDSA P-256/SHA-256 over timestamp + raw body, DER, base64."""
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


BODY = fixture("delivered")
NOW = 1_790_676_020
TIMESTAMP = str(NOW - 5)


# --- signature: the published vector -------------------------------------------------------------


def test_published_vector_verifies_over_the_exact_bytes() -> None:
    verify_sendgrid_signature(
        PUBLISHED_KEY,
        PUBLISHED_PAYLOAD,
        PUBLISHED_SIGNATURE,
        PUBLISHED_TIMESTAMP,
        now=1600112510,
        max_age_seconds=MAX_AGE,
    )


def test_published_vector_fails_without_its_trailing_crlf() -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_sendgrid_signature(
            PUBLISHED_KEY,
            PUBLISHED_PAYLOAD.removesuffix(b"\r\n"),
            PUBLISHED_SIGNATURE,
            PUBLISHED_TIMESTAMP,
            now=1600112510,
            max_age_seconds=MAX_AGE,
        )


def test_published_key_is_also_accepted_as_pem() -> None:
    pem = f"-----BEGIN PUBLIC KEY-----\n{PUBLISHED_KEY}\n-----END PUBLIC KEY-----\n"

    verify_sendgrid_signature(
        pem, PUBLISHED_PAYLOAD, PUBLISHED_SIGNATURE, PUBLISHED_TIMESTAMP, now=1600112502, max_age_seconds=MAX_AGE
    )


# --- signature: a key pair of our own ------------------------------------------------------------


def test_own_key_pair_signature_verifies(private_key: ec.EllipticCurvePrivateKey) -> None:
    verify_sendgrid_signature(
        spki_base64(private_key), BODY, sign(private_key, TIMESTAMP, BODY), TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE
    )


def _flip_last_byte(signature: str) -> str:
    der = bytearray(base64.b64decode(signature))
    der[-1] ^= 1
    return base64.b64encode(bytes(der)).decode()


def test_forged_signature_is_refused(private_key: ec.EllipticCurvePrivateKey) -> None:
    forged = _flip_last_byte(sign(private_key, TIMESTAMP, BODY))

    with pytest.raises(InvalidSignature, match="does not match"):
        verify_sendgrid_signature(spki_base64(private_key), BODY, forged, TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE)


def test_signature_by_another_key_is_refused(private_key: ec.EllipticCurvePrivateKey) -> None:
    signature = sign(ec.generate_private_key(ec.SECP256R1()), TIMESTAMP, BODY)

    with pytest.raises(InvalidSignature, match="does not match"):
        verify_sendgrid_signature(
            spki_base64(private_key), BODY, signature, TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE
        )


@pytest.mark.parametrize(
    "received",
    [BODY.replace(b"ada@", b"eve@"), BODY + b"\n", json.dumps(json.loads(BODY)).encode()],
    ids=["tampered", "extra-newline", "re-serialised"],
)
def test_altered_body_is_refused(private_key: ec.EllipticCurvePrivateKey, received: bytes) -> None:
    signature = sign(private_key, TIMESTAMP, BODY)

    with pytest.raises(InvalidSignature, match="does not match"):
        verify_sendgrid_signature(
            spki_base64(private_key), received, signature, TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE
        )


def test_signature_over_another_timestamp_is_refused(private_key: ec.EllipticCurvePrivateKey) -> None:
    signature = sign(private_key, str(NOW - 60), BODY)

    with pytest.raises(InvalidSignature, match="does not match"):
        verify_sendgrid_signature(
            spki_base64(private_key), BODY, signature, TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE
        )


@pytest.mark.parametrize(
    ("offset", "message"),
    [(MAX_AGE + 1, "s old"), (-(MAX_AGE + 1), "in the future")],
    ids=["stale", "future"],
)
def test_timestamp_outside_the_window_is_refused(
    private_key: ec.EllipticCurvePrivateKey, offset: int, message: str
) -> None:
    timestamp = str(NOW - offset)
    signature = sign(private_key, timestamp, BODY)

    with pytest.raises(InvalidSignature, match=f"Timestamp is .*{message}"):
        verify_sendgrid_signature(
            spki_base64(private_key), BODY, signature, timestamp, now=NOW, max_age_seconds=MAX_AGE
        )


@pytest.mark.parametrize("offset", [MAX_AGE, -MAX_AGE, 0])
def test_timestamp_at_the_edge_of_the_window_is_accepted(private_key: ec.EllipticCurvePrivateKey, offset: int) -> None:
    timestamp = str(NOW - offset)

    verify_sendgrid_signature(
        spki_base64(private_key), BODY, sign(private_key, timestamp, BODY), timestamp, now=NOW, max_age_seconds=MAX_AGE
    )


@pytest.mark.parametrize(
    ("signature", "timestamp", "header"),
    [
        (None, TIMESTAMP, "Signature header is missing"),
        ("", TIMESTAMP, "Signature header is missing"),
        ("MEUC", None, "Timestamp header is missing"),
        ("MEUC", "", "Timestamp header is missing"),
    ],
)
def test_missing_header_is_named(
    private_key: ec.EllipticCurvePrivateKey, signature: str | None, timestamp: str | None, header: str
) -> None:
    with pytest.raises(InvalidSignature, match=f"X-Twilio-Email-Event-Webhook-{header}"):
        verify_sendgrid_signature(
            spki_base64(private_key), BODY, signature, timestamp, now=NOW, max_age_seconds=MAX_AGE
        )


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("not base64!", "not base64"),
        ("MEUCIGHQ VtGj", "not base64"),
        ("é", "not base64"),
        ("A" * 400, "too long"),
        (base64.b64encode(b"not a DER signature").decode(), "does not match"),
    ],
)
def test_malformed_signature_is_refused(private_key: ec.EllipticCurvePrivateKey, signature: str, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_sendgrid_signature(
            spki_base64(private_key), BODY, signature, TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE
        )


@pytest.mark.parametrize("timestamp", ["yesterday", "1790676015.5", "-1790676015", " 1790676015", "1" * 20])
def test_timestamp_that_is_not_unix_seconds_is_refused(private_key: ec.EllipticCurvePrivateKey, timestamp: str) -> None:
    signature = sign(private_key, timestamp, BODY)

    with pytest.raises(InvalidSignature, match="Timestamp must be Unix seconds"):
        verify_sendgrid_signature(
            spki_base64(private_key), BODY, signature, timestamp, now=NOW, max_age_seconds=MAX_AGE
        )


def test_key_on_the_wrong_curve_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    signature = base64.b64encode(p384.sign(TIMESTAMP.encode() + BODY, ec.ECDSA(hashes.SHA256()))).decode()

    with pytest.raises(InvalidSignature, match="P-256"):
        verify_sendgrid_signature(spki_base64(p384), BODY, signature, TIMESTAMP, now=NOW, max_age_seconds=MAX_AGE)


# --- public key configuration --------------------------------------------------------------------


def test_public_key_loads_from_base64_der_and_from_pem(private_key: ec.EllipticCurvePrivateKey) -> None:
    pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    from_der = load_sendgrid_public_key(f"  {spki_base64(private_key)}\n")
    from_pem = load_sendgrid_public_key(pem)

    assert from_der.public_numbers() == from_pem.public_numbers() == private_key.public_key().public_numbers()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "MFkw"),
        ("not a key", "MFkw"),
        (base64.b64encode(b"junk").decode(), "MFkw"),
        (PUBLISHED_KEY[:-10], "MFkw"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "MFkw"),
        (spki_base64(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        (spki_base64(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "P-256"),
    ],
    ids=["empty", "words", "junk-der", "truncated", "junk-pem", "p384", "rsa"],
)
def test_unusable_public_key_is_explained(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_sendgrid_public_key(value)


# --- parsing: one recorded payload per event type ------------------------------------------------

MESSAGE_ID = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("processed", {"kind": "processed", "recipient": "ada@example.com", "hub_message_id": 4711}),
        ("deferred", {"kind": "deferred", "reason": "400 try again later", "detail": {"attempt": "5"}}),
        (
            "delivered",
            {"kind": "delivered", "reason": "250 OK", "ip": "168.1.1.1", "detail": {"tls": 1}, "bounce": None},
        ),
        (
            "open_machine",
            {
                "kind": "opened",
                "machine_flag": "sendgrid:sg_machine_open",
                "user_agent": "Mozilla/5.0",
                "ip": "17.58.0.1",
            },
        ),
        ("open_human", {"kind": "opened", "machine_flag": None, "ip": "203.0.113.7"}),
        (
            "click",
            {
                "kind": "clicked",
                "url": "https://example.com/pricing",
                "detail": {"url_offset": {"index": 0, "type": "html"}},
                "machine_flag": None,
            },
        ),
        (
            "bounce",
            {
                "kind": "bounced",
                "bounce": "hard",
                "recipient": "bob@invalid.example",
                "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
                "detail": {"status": "5.1.1", "bounce_classification": "Invalid Address", "tls": 1},
                "hub_message_id": None,
            },
        ),
        (
            "blocked",
            {
                "kind": "bounced",
                "bounce": "blocked",
                "provider_event": "bounce",
                "reason": "554 5.7.1 blocked",
                "detail": {"status": "5.7.1", "bounce_classification": "Reputation"},
            },
        ),
        (
            "dropped",
            {"kind": "dropped", "bounce": None, "reason": "Bounced Address", "detail": {"status": "5.0.0"}},
        ),
        ("spamreport", {"kind": "complained", "recipient": "erin@example.com", "rfc_message_id": None}),
        ("unsubscribe", {"kind": "unsubscribed", "recipient": "frank@example.com", "detail": {}}),
        (
            "group_unsubscribe",
            {
                "kind": "unsubscribed",
                "provider_event": "group_unsubscribe",
                "detail": {"asm_group_id": 10},
                "url": "https://example.com/prefs",
            },
        ),
        ("group_resubscribe", {"kind": "resubscribed", "detail": {"asm_group_id": 10}}),
    ],
)
def test_recorded_event_is_normalised(name: str, expected: dict[str, Any]) -> None:
    (event,) = parse_sendgrid_events(fixture(name))

    assert {key: getattr(event, key) for key in expected} == expected
    assert event.source == "sendgrid"
    assert event.kind in EMAIL_EVENT_KINDS
    assert event.external_id == fixture_event(name)["sg_event_id"]
    assert event.payload == fixture_event(name)
    assert event.occurred_at == datetime.fromtimestamp(fixture_event(name)["timestamp"], UTC)


def test_delivered_event_carries_both_message_ids() -> None:
    (event,) = parse_sendgrid_events(fixture("delivered"))

    assert event.rfc_message_id == "14c5d75ce93.dfd.64b469@ismtpd-555"
    assert event.provider_message_id == MESSAGE_ID
    assert event.hub_message_id == 4711
    assert event.occurred_at == datetime(2026, 9, 29, 10, 0, 10, tzinfo=UTC)


def test_a_batch_keeps_its_order_and_every_event() -> None:
    names = sorted(path.stem for path in FIXTURES.glob("*.json"))
    body = json.dumps([fixture_event(name) for name in names]).encode()

    events = parse_sendgrid_events(body)

    assert [event.external_id for event in events] == [fixture_event(name)["sg_event_id"] for name in names]
    assert len(names) == 13


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("newsletter", ("newsletter",)),
        (["welcome", "tx"], ("welcome", "tx")),
        ([], ()),
        (None, ()),
        ("", ()),
        (["welcome", 7, None, ""], ("welcome",)),
        (["c"] * 50, ("c",) * 20),
        ("x" * 300, ("x" * 255,)),
    ],
)
def test_category_may_be_a_string_or_an_array(category: Any, expected: tuple[str, ...]) -> None:
    event = fixture_event("bounce")
    event["category"] = category

    assert parse_one(event).categories == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4711", 4711),
        (4711, 4711),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        (2**63, None),
        ("0", None),
        (0, None),
        ("-5", None),
        (-5, None),
        ("42abc", None),
        (" 42", None),
        ("4.5", None),
        (4.0, None),
        (True, None),
        (None, None),
        (["4711"], None),
    ],
)
def test_hub_message_id_custom_argument(value: Any, expected: int | None) -> None:
    event = fixture_event("processed")
    event["hub_message_id"] = value

    assert parse_one(event).hub_message_id == expected


def test_unknown_event_type_is_kept_as_unknown_without_failing_the_batch() -> None:
    account_event = {"event": "account_status_change", "type": "compliance_suspend", "timestamp": 1790676700}
    body = json.dumps([fixture_event("delivered"), account_event, fixture_event("click")]).encode()

    delivered, unknown, click = parse_sendgrid_events(body)

    assert (delivered.kind, click.kind) == ("delivered", "clicked")
    assert unknown.kind == "unknown"
    assert unknown.provider_event == "account_status_change"
    assert unknown.recipient == ""
    assert unknown.external_id.startswith("sha256:")
    assert unknown.payload == account_event


def test_bounce_without_a_type_is_hard_and_with_an_unknown_type_has_no_class() -> None:
    event = fixture_event("bounce")
    del event["type"]
    assert parse_one(event).bounce == "hard"

    event["type"] = "expired"
    assert (parse_one(event).kind, parse_one(event).bounce) == ("bounced", None)

    event["type"] = ["bounce"]
    assert parse_one(event).bounce is None


def test_missing_event_id_gets_a_stable_digest() -> None:
    event = fixture_event("spamreport")
    del event["sg_event_id"]
    reordered = dict(reversed(list(event.items())))
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))

    external_id = parse_one(event).external_id

    assert external_id == parse_one(reordered).external_id
    assert external_id == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert len(external_id) <= 200


def test_overlong_event_id_is_replaced_by_a_digest() -> None:
    event = fixture_event("spamreport")
    event["sg_event_id"] = "x" * 201

    assert parse_one(event).external_id.startswith("sha256:")


def test_long_and_unstorable_strings_are_bounded() -> None:
    event = fixture_event("click")
    event["url"] = "https://example.com/" + "a" * 5000
    event["useragent"] = "U" * 5000
    event["email"] = "a" * 400 + "@example.com"
    event["reason"] = "r" * 5000

    parsed = parse_one(event)

    assert parsed.url is not None and len(parsed.url) == 2000
    assert parsed.user_agent is not None and len(parsed.user_agent) == 500
    assert len(parsed.recipient) == 320
    assert parsed.reason is not None and len(parsed.reason) == 1000


def test_a_lone_surrogate_is_refused_naming_where_it_is() -> None:
    # "\udc80" is half a UTF-16 pair: no database can store it as text, so the batch is junk.
    event = fixture_event("click")
    event["reason"] = "r\udc80"
    with pytest.raises(MalformedPayload) as refused:
        parse_one(event)
    assert refused.value.field == "[0].reason"


def test_reason_falls_back_to_the_smtp_response() -> None:
    event = fixture_event("deferred")
    assert parse_one(event).reason == "400 try again later"

    event["reason"] = "Mailbox full"
    assert parse_one(event).reason == "Mailbox full"


# --- parsing: malformed bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe[]", b"[{", b'[{"email": "a\\u0000b"}]', b"[NaN]", b"[" * 100 + b"]" * 100],
    ids=["empty", "words", "bad-utf8", "truncated", "nul", "nan", "deep"],
)
def test_body_that_is_not_acceptable_json_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="JSON"):
        parse_sendgrid_events(body)


def test_nul_character_is_refused_with_its_path() -> None:
    with pytest.raises(MalformedPayload) as raised:
        parse_sendgrid_events(b'[{"event": "open"}, {"email": "a\\u0000b"}]')

    assert raised.value.field == "[1].email"


@pytest.mark.parametrize("body", [b"{}", fixture("delivered").strip()[1:-1], b'"delivered"', b"null", b"42"])
def test_body_must_be_an_array(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="array"):
        parse_sendgrid_events(body)


def test_empty_batch_is_no_events() -> None:
    assert parse_sendgrid_events(b"[]") == []


def test_oversized_batch_is_refused() -> None:
    body = json.dumps([{"event": "open"}] * 10_001).encode()

    with pytest.raises(MalformedPayload, match="at most 10000"):
        parse_sendgrid_events(body)


@pytest.mark.parametrize("item", ["delivered", 42, None, ["event"]])
def test_array_item_that_is_not_an_object_is_named(item: Any) -> None:
    body = json.dumps([fixture_event("delivered"), item]).encode()

    with pytest.raises(MalformedPayload) as raised:
        parse_sendgrid_events(body)

    assert raised.value.field == "[1]"


@pytest.mark.parametrize(
    "timestamp",
    ["1790676010", "2026-09-29T10:00:10Z", True, None, 10**20, {"s": 1}],
    ids=["string", "iso", "bool", "null", "huge", "object"],
)
def test_bad_timestamp_is_named(timestamp: Any) -> None:
    event = fixture_event("delivered")
    event["timestamp"] = timestamp

    with pytest.raises(MalformedPayload) as raised:
        parse_sendgrid_events(json.dumps([fixture_event("open_human"), event]).encode())

    assert raised.value.field == "[1].timestamp"


def test_missing_timestamp_is_named() -> None:
    event = fixture_event("delivered")
    del event["timestamp"]

    with pytest.raises(MalformedPayload) as raised:
        parse_one(event)

    assert raised.value.field == "[0].timestamp"


@pytest.mark.parametrize("email", [None, "", "   ", 42])
def test_known_event_without_a_recipient_is_named(email: Any) -> None:
    event = fixture_event("delivered")
    event["email"] = email

    with pytest.raises(MalformedPayload) as raised:
        parse_one(event)

    assert raised.value.field == "[0].email"
