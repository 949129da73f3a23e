"""SendGrid Event Webhook: ECDSA signature verification and event-batch parsing."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from connectors.email_fields import bounded_text, digest_id, row_id, storable_id
from connectors.errors import InvalidSignature, MalformedPayload
from hub.events import MAX_EXTERNAL_ID, EmailEventReceived
from hub.validation import UnsafeInput, parse_json, plausible_event_time

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

MAX_EVENTS = 10_000
MAX_RECIPIENT = 320
MAX_URL = 2000
MAX_USER_AGENT = 500
MAX_IP = 64
MAX_MESSAGE_ID = 300
MAX_REASON = 1000
MAX_EVENT_NAME = 60
MAX_CATEGORIES = 20
MAX_CATEGORY = 255
MAX_DETAIL_TEXT = 200
# A DER ECDSA P-256 signature is at most 72 bytes, i.e. 96 base64 characters.
MAX_SIGNATURE_HEADER = 200

KINDS = {
    "processed": "processed",
    "dropped": "dropped",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "resubscribed",
}
"""SendGrid's ``event`` to our kind; any other event is stored as ``unknown``."""

BOUNCE_TYPES = {"bounce": "hard", "blocked": "blocked"}
"""A ``bounce`` event's ``type`` to our bounce class; a bounce without ``type`` is SendGrid's older hard bounce."""

DETAIL_KEYS = ("status", "attempt", "bounce_classification", "asm_group_id", "tls", "url_offset")

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def load_sendgrid_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The Event Webhook verification key (base64 DER SubjectPublicKeyInfo, or PEM) as a P-256 public key."""
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(
            "the SendGrid public key must be the base64 value shown under Settings > Mail Settings > "
            f"Event Webhook > Signature Verification (it starts MFkw...), or a PEM public key: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the SendGrid public key must be an ECDSA P-256 (prime256v1) key")
    return key


def verify_sendgrid_signature(
    public_key: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float,
    max_age_seconds: int,
) -> None:
    """ECDSA P-256/SHA-256 over ``timestamp + raw body``, within ``max_age_seconds`` of ``now`` either way."""
    if not signature:
        raise InvalidSignature(f"sendgrid: {SIGNATURE_HEADER} header is missing")
    if not timestamp:
        raise InvalidSignature(f"sendgrid: {TIMESTAMP_HEADER} header is missing")
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise InvalidSignature(f"sendgrid: {TIMESTAMP_HEADER} must be Unix seconds")
    # Checked before the (costlier) ECDSA verification; a replayed old request stops here.
    age = now - int(timestamp)
    if age > max_age_seconds:
        raise InvalidSignature(f"sendgrid: {TIMESTAMP_HEADER} is {int(age)} s old (limit {max_age_seconds} s)")
    if -age > max_age_seconds:
        raise InvalidSignature(f"sendgrid: {TIMESTAMP_HEADER} is {int(-age)} s in the future")
    if len(signature) > MAX_SIGNATURE_HEADER:
        raise InvalidSignature(f"sendgrid: {SIGNATURE_HEADER} is too long to be a P-256 signature")
    try:
        der = base64.b64decode(signature, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise InvalidSignature(f"sendgrid: {SIGNATURE_HEADER} is not base64") from None
    try:
        key = load_sendgrid_public_key(public_key)
    except ValueError as exc:
        raise InvalidSignature(f"sendgrid: the configured public key is unusable: {exc}") from None
    try:
        # The signed bytes are the body exactly as received: SendGrid's own test vector ends in CRLF.
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (CryptoInvalidSignature, ValueError):
        raise InvalidSignature(f"sendgrid: {SIGNATURE_HEADER} does not match the body") from None


def parse_sendgrid_events(body: bytes) -> list[EmailEventReceived]:
    """A POSTed batch (a JSON array of event objects) as EmailEventReceived, in order."""
    try:
        document = parse_json(body)
    except UnsafeInput as exc:
        raise MalformedPayload(f"sendgrid: body is not acceptable JSON: {exc}", field=exc.path or None) from None
    if not isinstance(document, list):
        raise MalformedPayload("sendgrid: body must be a JSON array of events")
    if len(document) > MAX_EVENTS:
        raise MalformedPayload(f"sendgrid: a batch holds at most {MAX_EVENTS} events, got {len(document)}")
    events = []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise MalformedPayload(f"sendgrid: event [{index}] must be an object", field=f"[{index}]")
        events.append(_event(index, item))
    return events


def _event(index: int, item: dict[str, Any]) -> EmailEventReceived:
    name = item.get("event")
    provider_event = name[:MAX_EVENT_NAME] if isinstance(name, str) else ""
    kind = KINDS.get(provider_event, "unknown")
    recipient = bounded_text(item.get("email"), MAX_RECIPIENT)
    # Account-level events may carry no recipient; they are kept as ``unknown`` all the same.
    if recipient is None and kind != "unknown":
        raise MalformedPayload(f"sendgrid: event [{index}] has no email", field=f"[{index}].email")
    smtp_id = bounded_text(item.get("smtp-id"), MAX_MESSAGE_ID + 2)
    return EmailEventReceived(
        source="sendgrid",
        external_id=_external_id(item),
        kind=kind,
        provider_event=provider_event,
        recipient=recipient or "",
        occurred_at=_occurred_at(index, item.get("timestamp")),
        hub_message_id=row_id(item.get("hub_message_id")),
        rfc_message_id=bounded_text(smtp_id.strip("<>"), MAX_MESSAGE_ID) if smtp_id else None,
        provider_message_id=bounded_text(item.get("sg_message_id"), MAX_MESSAGE_ID),
        url=bounded_text(item.get("url"), MAX_URL),
        user_agent=bounded_text(item.get("useragent"), MAX_USER_AGENT),
        ip=bounded_text(item.get("ip"), MAX_IP),
        machine_flag="sendgrid:sg_machine_open" if item.get("sg_machine_open") is True else None,
        bounce=_bounce(item) if provider_event == "bounce" else None,
        reason=bounded_text(item.get("reason"), MAX_REASON) or bounded_text(item.get("response"), MAX_REASON),
        categories=_categories(item.get("category")),
        detail=_detail(item),
        payload=item,
    )


def _bounce(item: dict[str, Any]) -> str | None:
    bounce_type = item.get("type", "bounce")
    return BOUNCE_TYPES.get(bounce_type) if isinstance(bounce_type, str) else None


def _external_id(item: dict[str, Any]) -> str:
    return storable_id(item.get("sg_event_id"), MAX_EXTERNAL_ID) or digest_id(item)


def _occurred_at(index: int, value: Any) -> datetime:
    field = f"[{index}].timestamp"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedPayload(f"sendgrid: event [{index}] needs a timestamp in Unix seconds", field=field)
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        moment = None
    if moment is None or not plausible_event_time(moment):
        raise MalformedPayload(f"sendgrid: event [{index}] timestamp is out of range", field=field)
    return moment


def _categories(value: Any) -> tuple[str, ...]:
    # SendGrid mirrors how the mail was sent: one category is a string, several are an array.
    values = value if isinstance(value, list) else [value]
    texts = (bounded_text(v, MAX_CATEGORY) for v in values[:MAX_CATEGORIES])
    return tuple(t for t in texts if t)


def _detail(item: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for key in DETAIL_KEYS:
        value = item.get(key)
        if value is not None:
            detail[key] = bounded_text(value, MAX_DETAIL_TEXT) if isinstance(value, str) else value
    return detail
