"""Provider webhooks as the providers send them, for the ingest fault tests: Twilio status callbacks signed
by twilio's own library, SendGrid batches signed with ECDSA P-256, Postmark events with basic auth, and
form posts with an Idempotency-Key; plus a client that retries on 5xx and connection errors."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

PUBLIC_URL = "https://hub.example.test"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
POSTMARK_USER = "postmark-hook"
POSTMARK_PASSWORD = "correct horse:battery staple"
TWILIO_FIXTURES = Path(__file__).parents[1] / "connectors" / "fixtures" / "twilio"
STATUS_PATH = "/webhooks/twilio/voice/status"


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery of one provider event; ``event`` names the event (redeliveries share it)."""

    event: str
    path: str
    content: bytes
    headers: dict[str, str]


def provider_env(sendgrid_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """HUB_ settings that configure every provider these deliveries come from."""
    der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "HUB_PUBLIC_URL": PUBLIC_URL,
        "HUB_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "HUB_SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(der).decode(),
        "HUB_POSTMARK_WEBHOOK_USER": POSTMARK_USER,
        "HUB_POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD,
        "HUB_FORM_MIN_FILL_SECONDS": "0",
        "HUB_FORM_RATE_PER_IP": "1000000",
        "HUB_FORM_RATE_PER_SOURCE": "1000000",
    }


def call_sid(n: int) -> str:
    return f"CA{n:032d}"


def contact_phone(n: int) -> str:
    """A valid US number of its own for the n-th call (n below 10,000)."""
    return f"+1202555{n:04d}"


def twilio_status(n: int) -> Delivery:
    """A signed "completed" status callback of an outbound call to contact_phone(n)."""
    recorded = (TWILIO_FIXTURES / "status_completed.txt").read_text(encoding="utf-8").strip()
    params = dict(parse_qsl(recorded, keep_blank_values=True))
    params.update(
        CallSid=call_sid(n),
        To=contact_phone(n),
        Called=contact_phone(n),
        Timestamp=datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
    )
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_URL}{STATUS_PATH}", params)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "TwilioProxy/1.1",
        "X-Twilio-Signature": signature,
    }
    return Delivery(f"status:{call_sid(n)}:3:completed", STATUS_PATH, urlencode(params).encode(), headers)


def sendgrid_delivered(n: int, key: ec.EllipticCurvePrivateKey) -> Delivery:
    """A signed SendGrid batch of one "delivered" event (sg_event_id ``sg-<n>``)."""
    now = int(time.time())
    event = {
        "email": f"reader{n}@example.org",
        "timestamp": now,
        "event": "delivered",
        "sg_event_id": f"sg-{n}",
        "sg_message_id": f"msg-{n}.filter0001",
        "response": "250 OK",
    }
    body = json.dumps([event], separators=(",", ":")).encode()
    timestamp = str(now)
    signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "X-Twilio-Email-Event-Webhook-Signature": signature,
    }
    return Delivery(f"sg-{n}", "/webhooks/email/sendgrid", body, headers)


def postmark_delivered(n: int) -> Delivery:
    """A Postmark Delivery event (basic auth); Postmark gives it no id, the hub digests the record."""
    record = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": f"00000000-0000-4000-8000-{n:012d}",
        "Recipient": f"reader{n}@example.org",
        "DeliveredAt": datetime.now(UTC).isoformat(),
        "Details": "Test delivery webhook details",
    }
    credentials = base64.b64encode(f"{POSTMARK_USER}:{POSTMARK_PASSWORD}".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {credentials}"}
    return Delivery(record["MessageID"], "/webhooks/email/postmark", json.dumps(record).encode(), headers)


def form_post(n: int, source: str = "website") -> Delivery:
    """A lead form post as a site's server sends it, with an Idempotency-Key so a retry is the same post."""
    body = json.dumps({"email": f"lead{n}@example.org", "name": f"Lead {n}", "message": "call me"}).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"lead-{n}"}
    return Delivery(f"lead-{n}", f"/webhooks/forms/{source}", body, headers)


@dataclass
class Attempts:
    """What the hub answered while a client retried: status codes (0: no answer), and the slowest answer."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0

    def seen(self, status: int, elapsed: float) -> None:
        self.statuses[status] += 1
        self.slowest = max(self.slowest, elapsed)


async def deliver(
    client: httpx.AsyncClient, delivery: Delivery, attempts: Attempts, *, within: float
) -> httpx.Response:
    """POST until the hub answers 2xx, retrying on 5xx and connection errors (as providers do) until ``within``
    seconds have passed; any 4xx fails at once."""
    deadline = time.monotonic() + within
    pause = 0.05
    while True:
        started = time.monotonic()
        try:
            response = await client.post(delivery.path, content=delivery.content, headers=delivery.headers)
        except httpx.TransportError as exc:
            attempts.seen(0, time.monotonic() - started)
            attempts.errors[type(exc).__name__] += 1
        else:
            attempts.seen(response.status_code, time.monotonic() - started)
            if response.is_success:
                return response
            if response.status_code < 500:
                raise AssertionError(f"{delivery.event}: {response.status_code} {response.text}")
            attempts.retry_after[response.headers.get("retry-after", "none")] += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"{delivery.event}: no 2xx within {within} s; answers so far: {attempts}")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)
