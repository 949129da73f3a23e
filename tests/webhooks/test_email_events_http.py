"""Email providers' event webhooks end to end over ASGI, on SQLite and PostgreSQL: SendGrid (ECDSA P-256),
Mailgun (HMAC-SHA256, one-time tokens) and Postmark (HTTP basic auth), posting the recorded payloads of
tests/connectors/fixtures; plus the suppression list and the human-or-machine verdicts a rep relies on."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from hub import clock
from hub.contacts.models import Contact
from hub.email import service as email
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.email.tokens import sign_click_token, sign_open_token
from hub.inbox.models import WebhookNonce
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock
from tests.provider_vectors import PUBLISHED_KEY, PUBLISHED_PAYLOAD, PUBLISHED_SIGNATURE, PUBLISHED_TIMESTAMP

FIXTURES = Path(__file__).parent.parent / "connectors" / "fixtures"
NOW = datetime(2026, 9, 29, 10, 16, 40, tzinfo=UTC)
"""Just after the recorded events (1790676000-1790676600), so their Mailgun signatures are fresh."""
SENDGRID_MAX_AGE = 300
MAILGUN_KEY = "TEST_WEBHOOK_SIGNING_KEY"  # the recorded Mailgun fixtures are signed with it
MAILGUN_MAX_AGE = 3600
POSTMARK_USER = "postmark-hook"
POSTMARK_PASSWORD = "correct horse:battery staple"
DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)
GMAIL_PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"

# sendgrid-python test/unit/test_eventwebhook.py (protocols.md §2.2): the trailing CRLF is part of what was signed.


# --- time, keys and hubs ---------------------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def spki_base64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public half as SendGrid shows it: base64 of DER SubjectPublicKeyInfo, no PEM armour."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def provider_settings(database_url: str, sendgrid_key: ec.EllipticCurvePrivateKey, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "sendgrid_webhook_public_key": spki_base64(sendgrid_key),
        "sendgrid_max_age_seconds": SENDGRID_MAX_AGE,
        "mailgun_signing_key": MAILGUN_KEY,
        "mailgun_max_age_seconds": MAILGUN_MAX_AGE,
        "postmark_webhook_user": POSTMARK_USER,
        "postmark_webhook_password": POSTMARK_PASSWORD,
        **overrides,
    }
    return make_settings(database_url, **values)


@pytest.fixture
async def mail_hub(
    database_url: str, sendgrid_key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> AsyncIterator[Hub]:
    """The app with all three providers configured, on each backend."""
    async for running in start_hub(provider_settings(database_url, sendgrid_key)):
        yield running


@pytest.fixture
async def sqlite_mail_hub(
    sqlite_url: str, sendgrid_key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> AsyncIterator[Hub]:
    """The same on SQLite only, for refusals at the edge (nothing reaches the database either way)."""
    async for running in start_hub(provider_settings(sqlite_url, sendgrid_key)):
        yield running


# --- posting as each provider does ----------------------------------------------------------------


def sendgrid_fixture(name: str, hub_message_id: int | None = None) -> bytes:
    """A recorded SendGrid POST body, with its ``hub_message_id`` custom arg pointing at our message."""
    raw = (FIXTURES / "sendgrid" / f"{name}.json").read_bytes()
    if hub_message_id is not None:
        raw = raw.replace(b'"hub_message_id":"4711"', f'"hub_message_id":"{hub_message_id}"'.encode())
    return raw


def sendgrid_event(name: str, **changes: Any) -> dict[str, Any]:
    (event,) = json.loads(sendgrid_fixture(name))
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def sendgrid_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


def sendgrid_signature(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """As SendGrid signs: ECDSA P-256/SHA-256 over timestamp + raw body, DER, base64."""
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


async def post_sendgrid(
    hub: Hub,
    body: bytes,
    key: ec.EllipticCurvePrivateKey,
    *,
    timestamp: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    timestamp = timestamp or str(int(clock.now().timestamp()))
    signed = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(key, timestamp, body),
    }
    return await hub.client.post("/webhooks/email/sendgrid", content=body, headers=headers or signed)


def mailgun_document(name: str, hub_message_id: int | None = None) -> dict[str, Any]:
    """A recorded Mailgun POST body; only timestamp + token are signed, so the event data may be adjusted."""
    document: dict[str, Any] = json.loads((FIXTURES / "mailgun" / f"{name}.json").read_bytes())
    variables = document["event-data"].get("user-variables", {})
    if hub_message_id is not None and variables.get("hub_message_id") == "4711":
        variables["hub_message_id"] = str(hub_message_id)
    return document


def mailgun_token(label: str) -> str:
    """A 50-character token like Mailgun's, stable per label."""
    return hashlib.sha256(label.encode()).hexdigest()[:50]


def mailgun_signed(
    document: dict[str, Any], token: str, *, timestamp: str | None = None, key: str = MAILGUN_KEY
) -> dict[str, Any]:
    """The document signed anew as Mailgun signs: hex HMAC-SHA256(key, timestamp + token)."""
    signed = copy.deepcopy(document)
    timestamp = timestamp or str(int(clock.now().timestamp()))
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    signed["signature"] = {"timestamp": timestamp, "token": token, "signature": digest}
    return signed


async def post_mailgun(
    hub: Hub, document: dict[str, Any] | bytes, content_type: str = "application/json"
) -> httpx.Response:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return await hub.client.post("/webhooks/email/mailgun", content=body, headers={"Content-Type": content_type})


def postmark_record(name: str, hub_message_id: int | None = None, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((FIXTURES / "postmark" / f"{name}.json").read_bytes())
    if hub_message_id is not None and record.get("Metadata", {}).get("hub_message_id") == "4711":
        record["Metadata"]["hub_message_id"] = str(hub_message_id)
    record.update(changes)
    return record


async def post_postmark(
    hub: Hub, record: dict[str, Any], auth: tuple[str, str] | None = (POSTMARK_USER, POSTMARK_PASSWORD)
) -> httpx.Response:
    # httpx sends what any client sends for https://user:password@host/: Authorization: Basic ...
    if auth is None:
        return await hub.client.post("/webhooks/email/postmark", json=record)
    return await hub.client.post("/webhooks/email/postmark", json=record, auth=auth)


# --- reading back what the hub did ----------------------------------------------------------------


async def create_contact(hub: Hub, address: str) -> int:
    response = await hub.client.post("/api/contacts", json={"email": address}, headers=hub.auth())
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["contact_id"]
    return contact_id


async def record_message(
    hub: Hub,
    recipient: str,
    contact_id: int | None,
    *,
    sent_at: datetime | None = None,
    rfc_message_id: str | None = None,
) -> int:
    async with hub.session() as session:
        message = await email.record_message(
            session, recipient=recipient, contact_id=contact_id, rfc_message_id=rfc_message_id, sent_at=sent_at
        )
        return message.id


async def email_timeline(hub: Hub, contact_id: int) -> list[dict[str, Any]]:
    """The contact's email entries, oldest first."""
    response = await hub.client.get(f"/api/contacts/{contact_id}/timeline?limit=200", headers=hub.auth())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return [e for e in reversed(items) if e["kind"].startswith(("email_", "suppression_"))]


async def kinds_on_timeline(hub: Hub, contact_id: int) -> list[str]:
    return [e["kind"] for e in await email_timeline(hub, contact_id)]


async def stored_events(hub: Hub) -> dict[str, EmailEvent]:
    """Every stored email event by its external id."""
    async with hub.session() as session:
        return {e.external_id: e for e in await session.scalars(select(EmailEvent).order_by(EmailEvent.id))}


async def suppressions(hub: Hub) -> dict[str, dict[str, Any]]:
    response = await hub.client.get("/api/suppressions?limit=200", headers=hub.auth())
    assert response.status_code == 200, response.text
    return {s["email"]: s for s in response.json()["items"]}


async def unmatched(hub: Hub) -> list[dict[str, Any]]:
    response = await hub.client.get("/api/email/unmatched?limit=200", headers=hub.auth())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def contact_emails(hub: Hub) -> set[str]:
    response = await hub.client.get("/api/contacts?limit=200", headers=hub.auth())
    return {address for c in response.json()["items"] for address in c["emails"]}


async def counts(hub: Hub) -> dict[str, int]:
    models = (EmailEvent, TimelineEntry, Suppression, Contact, EmailMessage, WebhookNonce)
    async with hub.session() as session:
        return {m.__tablename__: int(await session.scalar(select(func.count()).select_from(m)) or 0) for m in models}


def at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


# --- every provider event type reaches the right place ---------------------------------------------


async def test_sendgrid_every_event_type_reaches_the_right_place(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    ada = await create_contact(hub, "ada@example.com")
    others = ["carol@example.com", "dave@example.com", "erin@example.com", "frank@example.com", "gina@example.com"]
    carol, dave, erin, frank, gina = [await create_contact(hub, address) for address in others]
    message = await record_message(hub, "ada@example.com", ada, sent_at=at(1790675990))
    # Recorded order; bob@invalid.example is nobody's address.
    names = [
        "processed",
        "deferred",
        "delivered",
        "open_machine",
        "open_human",
        "click",
        "bounce",
        "blocked",
        "dropped",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
    ]
    for name in names:
        response = await post_sendgrid(hub, sendgrid_fixture(name, message), sendgrid_key)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["stored"] == 1, name
    # An event type the hub does not know (an account event, no recipient) does not fail its batch.
    unknown = {"event": "account_status_change", "timestamp": 1790676700, "sg_event_id": "YWNjb3VudC0x"}
    processed_for_carol = sendgrid_event(
        "processed", email="carol@example.com", sg_event_id="cHJvYy1jYXJvbA", hub_message_id=None
    )
    response = await post_sendgrid(hub, sendgrid_body([unknown, processed_for_carol]), sendgrid_key)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "stored": 2, "duplicates": 0, "unmatched": 1}

    events = await stored_events(hub)
    assert len(events) == 15
    expected = {  # sg_event_id: (kind, contact, message)
        "cHJvY2Vzc2VkLTEyMzQ1Njc4OS1hYmNkZWY": ("processed", ada, message),
        "ZGVmZXJyZWQtMTIzNDU2Nzg5": ("deferred", ada, message),
        "ZGVsaXZlcmVkLTEyMzQ1Njc4OQ": ("delivered", ada, message),
        "b3Blbi1tYWNoaW5lLTEyMzQ1": ("opened", ada, message),
        "b3Blbi1odW1hbi0xMjM0NQ": ("opened", ada, message),
        "Y2xpY2stMTIzNDU": ("clicked", ada, message),
        "Ym91bmNlLTEyMzQ1": ("bounced", None, None),
        "YmxvY2tlZC0xMjM0NQ": ("bounced", carol, None),
        "ZHJvcHBlZC0xMjM0NQ": ("dropped", dave, None),
        "c3BhbS0xMjM0NQ": ("complained", erin, None),
        "dW5zdWItMTIzNDU": ("unsubscribed", frank, None),
        "Z3Vuc3ViLTEyMzQ1": ("unsubscribed", gina, None),
        "Z3Jlc3ViLTEyMzQ1": ("resubscribed", gina, None),
        "YWNjb3VudC0x": ("unknown", None, None),
        "cHJvYy1jYXJvbA": ("processed", carol, None),
    }
    assert {k: (e.kind, e.contact_id, e.message_id) for k, e in events.items()} == expected
    machine_open, human_open = events["b3Blbi1tYWNoaW5lLTEyMzQ1"], events["b3Blbi1odW1hbi0xMjM0NQ"]
    assert (machine_open.machine, machine_open.machine_reason) == (True, "provider:sendgrid:sg_machine_open")
    assert (human_open.machine, human_open.machine_reason) == (False, "no_machine_signal")
    assert (events["Ym91bmNlLTEyMzQ1"].bounce, events["YmxvY2tlZC0xMjM0NQ"].bounce) == ("hard", "blocked")
    # category: an array when the mail was sent with several, a bare string with one.
    assert events["ZGVsaXZlcmVkLTEyMzQ1Njc4OQ"].categories == ["welcome", "tx"]
    assert events["Ym91bmNlLTEyMzQ1"].categories == ["newsletter"]

    # processed and deferred are kept, but a rep sees only what happened to the mail.
    assert await kinds_on_timeline(hub, ada) == ["email_delivered", "email_opened", "email_opened", "email_clicked"]
    clicked = (await email_timeline(hub, ada))[-1]
    assert clicked["source"] == "email:sendgrid"
    assert clicked["data"]["url"] == "https://example.com/pricing"
    assert clicked["data"]["message_id"] == message
    assert clicked["data"]["categories"] == ["welcome", "tx"]
    assert await kinds_on_timeline(hub, carol) == ["email_bounced"]
    assert await kinds_on_timeline(hub, erin) == ["email_complained"]
    assert await kinds_on_timeline(hub, frank) == ["email_unsubscribed"]
    assert await kinds_on_timeline(hub, gina) == ["email_unsubscribed", "email_resubscribed"]
    assert await kinds_on_timeline(hub, dave) == ["email_dropped"]

    listed = await suppressions(hub)
    assert {a: (s["reason"], s["source"], s["contact_id"]) for a, s in listed.items()} == {
        "bob@invalid.example": ("hard_bounce", "sendgrid", None),
        "erin@example.com": ("complaint", "sendgrid", erin),
        "frank@example.com": ("unsubscribe", "sendgrid", frank),
    }  # carol was blocked (not a hard bounce); gina resubscribed
    assert listed["bob@invalid.example"]["detail"].startswith("550 5.1.1")

    # Strangers' events are kept for review, never turned into contacts.
    assert {(e["recipient"], e["kind"]) for e in await unmatched(hub)} == {
        ("bob@invalid.example", "bounced"),
        ("", "unknown"),
    }
    assert await contact_emails(hub) == {"ada@example.com", *others}
    async with hub.session() as session:
        sent = await session.get(EmailMessage, message)
        assert sent is not None
        assert (sent.status, sent.delivered_at) == ("delivered", at(1790676010))

    # Every one of them delivered again (SendGrid retries for 24 hours): nothing changes.
    before = (await counts(hub), listed)
    for name in names:
        response = await post_sendgrid(hub, sendgrid_fixture(name, message), sendgrid_key)
        assert (response.status_code, response.json()["duplicates"]) == (200, 1), name
    assert (await counts(hub), await suppressions(hub)) == before


async def test_mailgun_every_event_type_reaches_the_right_place(mail_hub: Hub) -> None:
    hub = mail_hub
    ada = await create_contact(hub, "ada@example.com")
    full, erin, frank = [
        await create_contact(hub, a) for a in ("full@example.com", "erin@example.com", "frank@example.com")
    ]
    message = await record_message(hub, "ada@example.com", ada, sent_at=at(1790675990))
    names = [
        "delivered",
        "opened_bot_apple",
        "clicked",
        "failed_permanent",
        "failed_temporary",
        "complained",
        "unsubscribed",
    ]
    for name in names:  # as recorded, signatures and all
        response = await post_mailgun(hub, mailgun_document(name, message))
        assert response.status_code == 200, (name, response.text)
        assert response.json()["stored"] == 1, name
    stranger = mailgun_document("delivered")
    stranger["event-data"].update(event="list_member_uploaded", id="unknown-0001")
    response = await post_mailgun(hub, mailgun_signed(stranger, mailgun_token("unknown")))
    assert response.status_code == 200, response.text

    events = await stored_events(hub)
    expected = {
        "hTWCTD81RtiDN-dlvrd-0001": ("delivered", ada, message),
        "Ase7i2zsRYeDXztHGENqRA": ("opened", ada, message),
        "Ck7Q2wYtT3u9Zr0pL1mN4a": ("clicked", ada, message),
        "G9Bn5sL8RUapzNxHQd-perm-0002": ("bounced", None, None),
        "Kd3aX0qfRbO8zV7y-temp-0003": ("deferred", full, None),
        "Cp1aI2nE3dX4yZ5wV6uT7s": ("complained", erin, None),
        "Un5bS7cR1bEdQ4pX9wVz2k": ("unsubscribed", frank, None),
        "unknown-0001": ("unknown", ada, None),
    }
    assert {k: (e.kind, e.contact_id, e.message_id) for k, e in events.items()} == expected
    apple = events["Ase7i2zsRYeDXztHGENqRA"]
    assert (apple.machine, apple.machine_reason) == (True, "provider:mailgun:bot=apple")
    assert events["Ck7Q2wYtT3u9Zr0pL1mN4a"].machine is False
    assert events["G9Bn5sL8RUapzNxHQd-perm-0002"].bounce == "hard"

    assert await kinds_on_timeline(hub, ada) == ["email_delivered", "email_opened", "email_clicked"]
    assert await kinds_on_timeline(hub, full) == []  # a temporary failure is a deferral, kept off the timeline
    assert await kinds_on_timeline(hub, erin) == ["email_complained"]
    assert await kinds_on_timeline(hub, frank) == ["email_unsubscribed"]
    listed = await suppressions(hub)
    assert {a: (s["reason"], s["source"]) for a, s in listed.items()} == {
        "invalid@example.com": ("hard_bounce", "mailgun"),
        "erin@example.com": ("complaint", "mailgun"),
        "frank@example.com": ("unsubscribe", "mailgun"),
    }
    assert [e["recipient"] for e in await unmatched(hub)] == ["invalid@example.com"]
    assert "invalid@example.com" not in await contact_emails(hub)


async def test_postmark_every_record_type_reaches_the_right_place(mail_hub: Hub) -> None:
    hub = mail_hub
    ada = await create_contact(hub, "ada@example.com")
    full, erin, john = [
        await create_contact(hub, a) for a in ("full@example.com", "erin@example.com", "john@example.com")
    ]
    message = await record_message(hub, "ada@example.com", ada, sent_at=at(1790670000))
    names = [
        "delivery",
        "open",
        "click",
        "bounce_hard",
        "bounce_soft",
        "spam_complaint",
        "subscription_change_suppress",
    ]
    for name in names:
        response = await post_postmark(hub, postmark_record(name, message))
        assert response.status_code == 200, (name, response.text)
        assert response.json()["stored"] == 1, name
    assert "john@example.com" in await suppressions(hub)
    response = await post_postmark(hub, postmark_record("subscription_change_resubscribe"))
    assert response.status_code == 200, response.text
    unknown = {"RecordType": "Inbound", "Recipient": "ada@example.com", "ReceivedAt": "2026-09-29T10:07:00Z"}
    response = await post_postmark(hub, unknown)
    assert (response.status_code, response.json()["stored"]) == (200, 1)

    events = await stored_events(hub)
    by_kind = sorted((e.provider_event, e.kind, e.bounce, e.contact_id, e.message_id) for e in events.values())
    assert by_kind == sorted(
        [
            ("Delivery", "delivered", None, ada, message),
            ("Open", "opened", None, ada, message),
            ("Click", "clicked", None, ada, message),
            ("Bounce", "bounced", "hard", None, None),
            ("Bounce", "bounced", "soft", full, None),
            ("SpamComplaint", "complained", None, erin, None),
            ("SubscriptionChange", "unsubscribed", None, john, None),
            ("SubscriptionChange", "resubscribed", None, john, None),
            ("Inbound", "unknown", None, ada, None),
        ]
    )
    # Postmark's seven fractional digits and its offsets, read to the microsecond in UTC.
    hard = events["bounce:901542550"]
    assert hard.occurred_at == datetime(2016, 4, 27, 20, 28, 50, 396393, tzinfo=UTC)
    opened = next(e for e in events.values() if e.kind == "opened")
    assert opened.occurred_at == datetime(2026, 9, 29, 10, 5, 0, 249368, tzinfo=UTC)
    assert opened.machine is False

    assert await kinds_on_timeline(hub, ada) == ["email_delivered", "email_opened", "email_clicked"]
    assert await kinds_on_timeline(hub, full) == ["email_bounced"]
    assert await kinds_on_timeline(hub, erin) == ["email_complained"]
    assert await kinds_on_timeline(hub, john) == ["email_unsubscribed", "email_resubscribed"]
    listed = await suppressions(hub)
    assert {a: (s["reason"], s["source"]) for a, s in listed.items()} == {
        "bounce@example.com": ("hard_bounce", "postmark"),
        "erin@example.com": ("complaint", "postmark"),
    }  # a soft bounce suppresses nothing; john resubscribed
    assert [e["recipient"] for e in await unmatched(hub)] == ["bounce@example.com"]


async def test_events_go_to_the_hub_message_before_the_recipient_address(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    emailed = await create_contact(hub, "ada.old@example.com")  # the contact the hub wrote to
    holder = await create_contact(hub, "ada@example.com")  # whoever holds the address today
    sendgrid_message = await record_message(
        hub, "ada@example.com", emailed, rfc_message_id="14c5d75ce93.dfd.64b469@ismtpd-555"
    )
    mailgun_message = await record_message(
        hub, "ada@example.com", emailed, rfc_message_id="20260929100000.1.DF5966851B4BAA99@mg.example.com"
    )

    by_custom_arg = sendgrid_fixture("delivered", sendgrid_message)
    by_message_id = sendgrid_body([sendgrid_event("delivered", hub_message_id=None, sg_event_id="ZGVsaXZlcmVkLTI")])
    by_address = sendgrid_body([sendgrid_event("click", hub_message_id=None)])  # no custom arg, no Message-ID
    for body in (by_custom_arg, by_message_id, by_address):
        assert (await post_sendgrid(hub, body, sendgrid_key)).status_code == 200
    mailgun = mailgun_document("delivered")
    del mailgun["event-data"]["user-variables"]["hub_message_id"]  # matched by its Message-ID header
    assert (await post_mailgun(hub, mailgun)).status_code == 200
    assert (await post_postmark(hub, postmark_record("open", sendgrid_message))).status_code == 200

    events = await stored_events(hub)
    assert {k: (e.contact_id, e.message_id) for k, e in events.items() if not k.startswith("sha256:")} == {
        "ZGVsaXZlcmVkLTEyMzQ1Njc4OQ": (emailed, sendgrid_message),
        "ZGVsaXZlcmVkLTI": (emailed, sendgrid_message),
        "Y2xpY2stMTIzNDU": (holder, None),
        "hTWCTD81RtiDN-dlvrd-0001": (emailed, mailgun_message),
    }
    assert await kinds_on_timeline(hub, emailed) == [
        "email_delivered",
        "email_delivered",
        "email_delivered",
        "email_opened",
    ]
    assert await kinds_on_timeline(hub, holder) == ["email_clicked"]


# --- SendGrid: batches, redelivery, signatures ----------------------------------------------------


def thousand_events(prefix: str) -> list[dict[str, Any]]:
    """One lead's mail over a day: processed, deferred and delivered events, categories as string or array."""
    names = ("processed", "deferred", "delivered")
    return [
        {
            "email": "ada@example.com",
            "timestamp": 1790600000 + 60 * i,
            "event": names[i % 3],
            "category": "newsletter" if i % 2 else ["welcome", "tx"],
            "sg_event_id": f"{prefix}-{i:04d}",
            "sg_message_id": f"msg-{i // 3}.filter0001",
        }
        for i in range(1000)
    ]


async def test_sendgrid_batch_of_1000_is_stored_at_once_and_redelivery_changes_nothing(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    await create_contact(hub, "ada@example.com")
    batch = sendgrid_body(thousand_events("bulk"))
    commits: list[object] = []

    def count_commit(_connection: object) -> None:
        commits.append(_connection)

    sa_event.listen(hub.runtime.engine.sync_engine, "commit", count_commit)
    try:
        response = await post_sendgrid(hub, batch, sendgrid_key)
    finally:
        sa_event.remove(hub.runtime.engine.sync_engine, "commit", count_commit)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1000, "stored": 1000, "duplicates": 0, "unmatched": 0}
    assert len(commits) == 1  # one transaction: all 1,000 or none
    after_first = await counts(hub)
    assert after_first["email_events"] == 1000
    assert after_first["timeline_entries"] == 1 + 333  # the contact's creation, and each delivery

    for _ in range(3):  # SendGrid redelivers for 24 hours after any failure
        again = await post_sendgrid(hub, batch, sendgrid_key)
        assert again.status_code == 200
        assert again.json() == {"received": 1000, "stored": 0, "duplicates": 1000, "unmatched": 0}
    assert await counts(hub) == after_first

    # One malformed item refuses the whole batch before anything is written.
    broken = thousand_events("next")
    broken[500]["timestamp"] = "yesterday"
    refused = await post_sendgrid(hub, sendgrid_body(broken), sendgrid_key)
    assert refused.status_code == 400
    assert refused.json()["field"] == "[500].timestamp"
    assert await counts(hub) == after_first


async def test_concurrent_redeliveries_of_one_batch_take_effect_once(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    frank = await create_contact(hub, "frank@example.com")
    events = [sendgrid_event(name, email="frank@example.com") for name in ("delivered", "unsubscribe", "spamreport")]
    batch = sendgrid_body([{k: v for k, v in e.items() if k != "hub_message_id"} for e in events])
    # A retry can overlap the first delivery still in flight (SendGrid timed out waiting for our answer).
    responses = await asyncio.gather(*(post_sendgrid(hub, batch, sendgrid_key) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert sum(r.json()["stored"] for r in responses) == 3
    assert sum(r.json()["duplicates"] for r in responses) == 6
    assert await kinds_on_timeline(hub, frank) == ["email_delivered", "email_complained", "email_unsubscribed"]
    assert {a: s["reason"] for a, s in (await suppressions(hub)).items()} == {"frank@example.com": "complaint"}
    assert (await counts(hub))["email_events"] == 3


async def test_sendgrid_published_test_vector_is_accepted_over_http(database_url: str, frozen: FrozenClock) -> None:
    frozen.at = at(int(PUBLISHED_TIMESTAMP) + 10)
    settings = make_settings(database_url, sendgrid_webhook_public_key=PUBLISHED_KEY, sendgrid_max_age_seconds=300)
    async for hub in start_hub(settings):
        response = await hub.client.post(
            "/webhooks/email/sendgrid",
            content=PUBLISHED_PAYLOAD,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": PUBLISHED_SIGNATURE,
                "X-Twilio-Email-Event-Webhook-Timestamp": PUBLISHED_TIMESTAMP,
            },
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "unmatched": 1}
        [dropped] = await unmatched(hub)
        assert (dropped["recipient"], dropped["kind"], dropped["reason"]) == (
            "hello@world.com",
            "dropped",
            "Bounced Address",
        )
        # Without the CRLF the bytes are not what SendGrid signed.
        trimmed = await hub.client.post(
            "/webhooks/email/sendgrid",
            content=PUBLISHED_PAYLOAD.rstrip(),
            headers={
                "X-Twilio-Email-Event-Webhook-Signature": PUBLISHED_SIGNATURE,
                "X-Twilio-Email-Event-Webhook-Timestamp": PUBLISHED_TIMESTAMP,
            },
        )
        assert trimmed.status_code == 403


async def test_sendgrid_refuses_unsigned_or_stale_deliveries_with_403_and_writes_nothing(
    sqlite_mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = sqlite_mail_hub
    body = sendgrid_fixture("spamreport")
    now = int(clock.now().timestamp())
    other_key = ec.generate_private_key(ec.SECP256R1())
    good = {
        "X-Twilio-Email-Event-Webhook-Timestamp": str(now),
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(sendgrid_key, str(now), body),
    }

    def signed_at(timestamp: int, key: ec.EllipticCurvePrivateKey = sendgrid_key) -> dict[str, str]:
        return {
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(key, str(timestamp), body),
        }

    cases = {
        "forged (signature of another body)": {
            **good,
            "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(sendgrid_key, str(now), body + b" "),
        },
        "signed with another key": signed_at(now, other_key),
        "timestamp swapped after signing": {**good, "X-Twilio-Email-Event-Webhook-Timestamp": str(now - 1)},
        "stale": signed_at(now - SENDGRID_MAX_AGE - 1),
        "from the future": signed_at(now + SENDGRID_MAX_AGE + 1),
        "no signature header": {"X-Twilio-Email-Event-Webhook-Timestamp": str(now)},
        "no timestamp header": {
            "X-Twilio-Email-Event-Webhook-Signature": good["X-Twilio-Email-Event-Webhook-Signature"]
        },
        "no headers": {},
    }
    before = await counts(hub)
    for case, headers in cases.items():
        response = await hub.client.post(
            "/webhooks/email/sendgrid", content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 403, (case, response.text)
        assert response.json()["field"] == "X-Twilio-Email-Event-Webhook-Signature", case
    assert await counts(hub) == before
    assert await suppressions(hub) == {}
    # The same body, properly signed, is then accepted: the refusals above were about the signature alone.
    accepted = await hub.client.post("/webhooks/email/sendgrid", content=body, headers=good)
    assert accepted.status_code == 200


async def test_unconfigured_providers_answer_503(sqlite_url: str, frozen: FrozenClock) -> None:
    async for hub in start_hub(make_settings(sqlite_url)):
        for provider in ("sendgrid", "mailgun", "postmark"):
            response = await hub.client.post(f"/webhooks/email/{provider}", content=b"[]")
            assert response.status_code == 503, provider
            assert "not configured" in response.json()["message"]
        assert (await counts(hub))["email_events"] == 0


async def test_bodies_over_the_limit_are_refused_with_413(
    sqlite_url: str, sendgrid_key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    settings = provider_settings(sqlite_url, sendgrid_key, email_webhook_max_bytes=4096)
    async for hub in start_hub(settings):
        events = [sendgrid_event("delivered", sg_event_id=f"big-{i}", hub_message_id=None) for i in range(20)]
        body = sendgrid_body(events)
        assert len(body) > 4096
        response = await post_sendgrid(hub, body, sendgrid_key)
        assert response.status_code == 413
        fits = await post_sendgrid(hub, sendgrid_body(events[:5]), sendgrid_key)
        assert fits.status_code == 200
        assert (await counts(hub))["email_events"] == 5


# --- Mailgun: 406 is its only "do not retry" -------------------------------------------------------


async def test_mailgun_refusals_are_406_and_write_nothing(sqlite_mail_hub: Hub) -> None:
    hub = sqlite_mail_hub
    document = mailgun_document("failed_permanent")
    now = int(clock.now().timestamp())
    forged = copy.deepcopy(document)
    forged["signature"]["signature"] = "0" * 64
    cases: dict[str, tuple[bytes, str]] = {
        "forged": (json.dumps(forged).encode(), "application/json"),
        "signed with another key": (
            json.dumps(mailgun_signed(document, mailgun_token("k"), key="not-the-key")).encode(),
            "application/json",
        ),
        "stale": (
            json.dumps(mailgun_signed(document, mailgun_token("s"), timestamp=str(now - MAILGUN_MAX_AGE - 1))).encode(),
            "application/json",
        ),
        "malformed JSON": (b'{"signature": {"timestamp": ', "application/json"),
        "not an object": (b"[]", "application/json"),
        "legacy form post": (
            b"timestamp=1&token=abc&signature=def&event=delivered",
            "application/x-www-form-urlencoded",
        ),
    }
    for case, (body, content_type) in cases.items():
        response = await post_mailgun(hub, body, content_type)
        assert response.status_code == 406, (case, response.text)
    after = await counts(hub)
    assert (after["email_events"], after["suppressions"], after["webhook_nonces"]) == (0, 0, 0)


async def test_mailgun_token_is_single_use_and_event_ids_dedupe(mail_hub: Hub) -> None:
    hub = mail_hub
    first = mailgun_document("unsubscribed")
    assert (await post_mailgun(hub, first)).status_code == 200
    after_first = await counts(hub)

    # Someone replays the captured signature, here with a body of their own: nothing new is written.
    replay = mailgun_document("complained")
    replay["signature"] = first["signature"]
    for body in (first, replay):
        response = await post_mailgun(hub, body)
        assert response.status_code == 406, response.text
        assert response.json()["field"] == "signature.token"
    assert await counts(hub) == after_first
    assert set(await suppressions(hub)) == {"frank@example.com"}

    # Mailgun's own redelivery of the event, signed with a fresh token: accepted, stored once.
    resent = await post_mailgun(hub, mailgun_signed(first, mailgun_token("resend")))
    assert resent.status_code == 200
    assert resent.json() == {"received": 1, "stored": 0, "duplicates": 1, "unmatched": 0}
    after_resend = await counts(hub)
    assert after_resend["email_events"] == after_first["email_events"] == 1
    assert after_resend["webhook_nonces"] == 2


# --- Postmark: basic auth ---------------------------------------------------------------------------


async def test_postmark_bad_credentials_are_403_and_write_nothing(sqlite_mail_hub: Hub) -> None:
    hub = sqlite_mail_hub
    record = postmark_record("bounce_hard")
    for case, auth in {
        "wrong user": ("intruder", POSTMARK_PASSWORD),
        "wrong password": (POSTMARK_USER, "guess"),
        "no password": (POSTMARK_USER, ""),
        "no header": None,
    }.items():
        response = await post_postmark(hub, record, auth=auth)
        assert response.status_code == 403, case
        assert response.json()["field"] == "Authorization"
    bearer = await hub.client.post(
        "/webhooks/email/postmark", json=record, headers={"Authorization": f"Bearer {POSTMARK_PASSWORD}"}
    )
    assert bearer.status_code == 403
    assert (await counts(hub))["email_events"] == 0
    assert await suppressions(hub) == {}


# --- the suppression list ------------------------------------------------------------------------


async def test_a_resubscribe_lifts_only_an_unsubscribe(mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    hub = mail_hub
    await post_sendgrid(
        hub,
        sendgrid_body([sendgrid_event("bounce"), sendgrid_event("spamreport"), sendgrid_event("unsubscribe")]),
        sendgrid_key,
    )
    assert (await post_mailgun(hub, mailgun_document("unsubscribed"))).status_code == 200  # frank, again
    john = await post_postmark(hub, postmark_record("subscription_change_suppress"))
    assert john.status_code == 200
    assert {a: s["reason"] for a, s in (await suppressions(hub)).items()} == {
        "bob@invalid.example": "hard_bounce",
        "erin@example.com": "complaint",
        "frank@example.com": "unsubscribe",
        "john@example.com": "unsubscribe",
    }

    def resubscribe(address: str, n: int) -> dict[str, Any]:
        return sendgrid_event("group_resubscribe", email=address, sg_event_id=f"resub-{n}", timestamp=1790676700 + n)

    everyone = ["bob@invalid.example", "erin@example.com", "frank@example.com"]
    response = await post_sendgrid(
        hub, sendgrid_body([resubscribe(a, n) for n, a in enumerate(everyone)]), sendgrid_key
    )
    assert response.status_code == 200
    for n, address in enumerate(["bob@invalid.example", "erin@example.com", "john@example.com"]):
        change = postmark_record(
            "subscription_change_resubscribe", Recipient=address, ChangedAt=f"2026-09-29T10:2{n}:00Z"
        )
        assert (await post_postmark(hub, change)).status_code == 200

    listed = await suppressions(hub)
    assert {a: (s["reason"], s["source"]) for a, s in listed.items()} == {
        "bob@invalid.example": ("hard_bounce", "sendgrid"),
        "erin@example.com": ("complaint", "sendgrid"),
        # Frank unsubscribed at SendGrid and at Mailgun: SendGrid's resubscribe does not speak for Mailgun's.
        "frank@example.com": ("unsubscribe", "several"),
    }


async def test_a_complaint_after_an_unsubscribe_upgrades_the_reason(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    # Across requests and providers: unsubscribed at Mailgun, then a spam complaint at Postmark.
    assert (await post_mailgun(hub, mailgun_document("unsubscribed"))).status_code == 200
    complaint = postmark_record("spam_complaint", Email="frank@example.com")
    assert (await post_postmark(hub, complaint)).status_code == 200
    # Within one SendGrid batch: unsubscribe, then spamreport a minute later.
    same_batch = [
        sendgrid_event("unsubscribe", email="erin@example.com", sg_event_id="u-erin", timestamp=1790676300),
        sendgrid_event("spamreport", email="erin@example.com", sg_event_id="c-erin", timestamp=1790676360),
    ]
    assert (await post_sendgrid(hub, sendgrid_body(same_batch), sendgrid_key)).status_code == 200
    # And never back down: an unsubscribe after a complaint leaves the complaint.
    later = [sendgrid_event("unsubscribe", email="frank@example.com", sg_event_id="u-frank", timestamp=1790676900)]
    assert (await post_sendgrid(hub, sendgrid_body(later), sendgrid_key)).status_code == 200

    listed = await suppressions(hub)
    assert {a: (s["reason"], s["source"]) for a, s in listed.items()} == {
        "frank@example.com": ("complaint", "postmark"),
        "erin@example.com": ("complaint", "sendgrid"),
    }
    resubscribe = [
        sendgrid_event("group_resubscribe", email=a, sg_event_id=f"r-{a}", timestamp=1790677000) for a in listed
    ]
    assert (await post_sendgrid(hub, sendgrid_body(resubscribe), sendgrid_key)).status_code == 200
    assert set(await suppressions(hub)) == {"frank@example.com", "erin@example.com"}


async def test_lifting_a_suppression_is_for_admins_and_is_recorded(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    frank = await create_contact(hub, "frank@example.com")
    batch = sendgrid_body([sendgrid_event("unsubscribe"), sendgrid_event("bounce")])
    assert (await post_sendgrid(hub, batch, sendgrid_key)).status_code == 200
    manager = await hub.create_key("manager")
    rep = await hub.create_key("rep", rep_id=await hub.create_rep())
    for key in (manager, rep):
        refused = await hub.client.delete("/api/suppressions/frank@example.com", headers=hub.auth(key))
        assert refused.status_code == 403
    assert set(await suppressions(hub)) == {"frank@example.com", "bob@invalid.example"}
    assert (await hub.client.get("/api/suppressions", headers=hub.auth(manager))).status_code == 200

    lifted = await hub.client.delete("/api/suppressions/frank@example.com", headers=hub.auth())
    assert lifted.status_code == 204
    # Addresses are matched as the hub stores them (lower case).
    assert (await hub.client.delete("/api/suppressions/Bob@Invalid.Example", headers=hub.auth())).status_code == 204
    assert await suppressions(hub) == {}
    for absent in ("frank@example.com", "nobody@example.com"):
        missing = await hub.client.delete(f"/api/suppressions/{absent}", headers=hub.auth())
        assert missing.status_code == 404
        assert missing.json()["field"] == "email"

    entry = (await email_timeline(hub, frank))[-1]
    assert entry["kind"] == "suppression_lifted"
    assert entry["data"] == {"email": "frank@example.com", "by": "test admin", "previous_reason": "unsubscribe"}
    lifts = [e for e in (await stored_events(hub)).values() if e.provider_event == "suppression_lifted"]
    assert sorted((e.recipient, e.contact_id, e.source, e.data["by"]) for e in lifts) == [
        ("bob@invalid.example", None, "api", "test admin"),
        ("frank@example.com", frank, "api", "test admin"),
    ]


# --- human or machine -----------------------------------------------------------------------------


async def test_opens_are_told_apart_by_provider_flag_timing_and_user_agent(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    hub = mail_hub
    ada = await create_contact(hub, "ada@example.com")
    delivered = 1790676010
    # Sent ten minutes before it was delivered (deferred): timing counts from the delivery, not the send.
    message = await record_message(hub, "ada@example.com", ada, sent_at=at(delivered - 600))

    def open_at(offset: int, event_id: str, **changes: Any) -> dict[str, Any]:
        changes = {"timestamp": delivered + offset, "sg_event_id": event_id, "hub_message_id": str(message), **changes}
        return sendgrid_event("open_human", **changes)

    batch = [
        sendgrid_event("delivered", hub_message_id=str(message)),
        open_at(3, "too-soon"),  # a desktop browser, but three seconds after delivery: a gateway's prefetch
        open_at(200, "flagged", sg_machine_open=True, useragent="Mozilla/5.0", ip="17.58.0.1"),
        open_at(3 * 3600, "hours-later"),
    ]
    assert (await post_sendgrid(hub, sendgrid_body(batch), sendgrid_key)).status_code == 200
    # A stranger's mail (no hub message): the delivery arrives first, the open in a later batch.
    stranger = sendgrid_event(
        "delivered", email="zed@example.org", sg_event_id="d-zed", sg_message_id="zed-1", hub_message_id=None
    )
    assert (await post_sendgrid(hub, sendgrid_body([stranger]), sendgrid_key)).status_code == 200
    stranger_open = open_at(2, "zed-open", email="zed@example.org", sg_message_id="zed-1", hub_message_id=None)
    assert (await post_sendgrid(hub, sendgrid_body([stranger_open]), sendgrid_key)).status_code == 200
    # The Gmail image proxy fetching the hub's own pixel, hours after sending.
    frozen.at = at(delivered + 4 * 3600)
    pixel = await hub.client.get(
        f"/t/o/{sign_open_token(hub.runtime.secret_key, message)}", headers={"User-Agent": GMAIL_PROXY_UA}
    )
    assert pixel.status_code == 200

    events = await stored_events(hub)
    verdicts = {k: (e.machine, e.machine_reason) for k, e in events.items() if e.kind == "opened"}
    assert {k: v for k, v in verdicts.items() if not k.startswith("opened:")} == {
        "too-soon": (True, "too_soon_after_delivery"),
        "flagged": (True, "provider:sendgrid:sg_machine_open"),
        "hours-later": (False, "no_machine_signal"),
        "zed-open": (True, "too_soon_after_delivery"),
    }
    [gmail] = [v for k, v in verdicts.items() if k.startswith("opened:")]
    assert gmail == (True, "gmail_image_proxy")
    # The rep's timeline carries each verdict, so "they just opened it" is only said of a person.
    opens = [e["data"] for e in await email_timeline(hub, ada) if e["kind"] == "email_opened"]
    assert [(d["machine"], d["machine_reason"]) for d in opens] == [
        (True, "too_soon_after_delivery"),
        (True, "provider:sendgrid:sg_machine_open"),
        (False, "no_machine_signal"),
        (True, "gmail_image_proxy"),
    ]


async def test_provider_opens_arriving_out_of_order_still_collapse_into_one_entry(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hub = mail_hub
    ada = await create_contact(hub, "ada@example.com")
    later = sendgrid_event("open_human", sg_event_id="open-late", timestamp=1790676230, hub_message_id=None)
    earlier = sendgrid_event("open_human", sg_event_id="open-early", timestamp=1790676200, hub_message_id=None)
    # SendGrid delivers batches in no particular order: the later pixel hit is reported first.
    for event in (later, earlier):
        assert (await post_sendgrid(hub, sendgrid_body([event]), sendgrid_key)).status_code == 200
    events = await stored_events(hub)
    assert sorted(e.collapsed for e in events.values()) == [False, True]
    assert await kinds_on_timeline(hub, ada) == ["email_opened"]


async def test_a_link_scanner_burst_marks_every_click_machine_even_the_first(
    mail_hub: Hub, sendgrid_key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    hub = mail_hub
    ada = await create_contact(hub, "ada@example.com")
    message = await record_message(hub, "ada@example.com", ada, sent_at=NOW - timedelta(hours=2))
    links = ["https://example.com/pricing", "https://example.com/demo", "https://example.com/unsubscribe-prefs"]
    secret = hub.runtime.secret_key
    # Through the hub's own redirect: three requests, each clicked a second after the last.
    for n, link in enumerate(links):
        response = await hub.client.get(
            f"/t/c/{sign_click_token(secret, message, link)}", headers={"User-Agent": DESKTOP_UA}
        )
        assert (response.status_code, response.headers["location"]) == (302, link)
        if n == 0:
            [first] = (await stored_events(hub)).values()
            assert (first.machine, first.machine_reason) == (False, "no_machine_signal")  # looked human, alone
        frozen.advance(1)
    # Reported by SendGrid in one batch, about another message to the same lead.
    batch = [
        sendgrid_event("click", url=link, sg_event_id=f"scan-{n}", timestamp=1790676300 + n, hub_message_id=None)
        for n, link in enumerate(links)
    ]
    assert (await post_sendgrid(hub, sendgrid_body(batch), sendgrid_key)).status_code == 200

    clicks = [e for e in (await stored_events(hub)).values() if e.kind == "clicked"]
    assert len(clicks) == 6
    assert {(e.source, e.machine, e.machine_reason) for e in clicks} == {
        ("hub", True, "link_scanner_burst"),
        ("sendgrid", True, "link_scanner_burst"),
    }
    entries = [e for e in await email_timeline(hub, ada) if e["kind"] == "email_clicked"]
    assert len(entries) == 6
    assert all((e["data"]["machine"], e["data"]["machine_reason"]) == (True, "link_scanner_burst") for e in entries)

    # A link checker's HEAD is never a person.
    frozen.advance(3600)
    probe = await hub.client.head(
        f"/t/c/{sign_click_token(secret, message, 'https://example.com/docs')}", headers={"User-Agent": DESKTOP_UA}
    )
    assert probe.status_code == 302
    [head] = [e for e in (await stored_events(hub)).values() if e.url == "https://example.com/docs"]
    assert (head.machine, head.machine_reason) == (True, "head_request")
