"""Mailgun webhooks: HMAC signature verification and JSON event parsing."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.email_fields import bounded_text, row_id, storable_id
from connectors.errors import InvalidSignature, MalformedPayload
from hub.events import MAX_EXTERNAL_ID, EmailEventReceived
from hub.validation import UnsafeInput, parse_json, plausible_event_time

MAX_RECIPIENT = 320
MAX_URL = 2000
MAX_USER_AGENT = 500
MAX_IP = 64
MAX_MESSAGE_ID = 300
MAX_REASON = 1000
MAX_EVENT_NAME = 60
MAX_BOT = 80
"""Keeps ``mailgun:bot=<value>`` inside the 100-character machine reason."""
MAX_TAGS = 20
MAX_TAG = 255
MAX_DETAIL_TEXT = 200
MAX_TOKEN = 200

KINDS: dict[str, tuple[str, str | None]] = {
    "accepted": ("processed", None),
    "delivered": ("delivered", None),
    "opened": ("opened", None),
    "clicked": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    "complained": ("complained", None),
    "rejected": ("dropped", None),
}
"""Mailgun's ``event`` to our (kind, bounce); ``failed`` is read by FAILURES, anything else is ``unknown``."""

FAILURES: dict[str, tuple[str, str | None]] = {
    "permanent": ("bounced", "hard"),
    "temporary": ("deferred", None),
}
"""A ``failed`` event's ``severity`` to our (kind, bounce)."""

SUPPRESSED_REASONS = frozenset({"suppress-bounce", "suppress-unsubscribe", "suppress-complaint"})
"""Permanent failures where Mailgun never tried: the address was already on its suppression list."""

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class MailgunSignature:
    """The ``signature`` object of a webhook body: HMAC-SHA256(key, timestamp + token) in hex."""

    timestamp: str
    token: str
    signature: str


def verify_mailgun_signature(signing_key: str, sig: MailgunSignature, *, now: float, max_age_seconds: int) -> None:
    """Hex HMAC-SHA256(signing key, timestamp + token), constant-time, within ``max_age_seconds`` of ``now``."""
    if not sig.timestamp or not sig.token or not sig.signature:
        raise InvalidSignature("mailgun: signature.timestamp, signature.token and signature.signature are required")
    if not _UNIX_SECONDS.fullmatch(sig.timestamp):
        raise InvalidSignature("mailgun: signature.timestamp must be Unix seconds")
    age = now - int(sig.timestamp)
    if age > max_age_seconds:
        raise InvalidSignature(f"mailgun: signature.timestamp is {int(age)} s old (limit {max_age_seconds} s)")
    if -age > max_age_seconds:
        raise InvalidSignature(f"mailgun: signature.timestamp is {int(-age)} s in the future")
    # The body itself is not signed; only the timestamp and the token are.
    expected = hmac.new(signing_key.encode(), (sig.timestamp + sig.token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), sig.signature.lower().encode()):
        raise InvalidSignature("mailgun: signature.signature does not match")


def parse_mailgun_webhook(body: bytes, content_type: str) -> tuple[MailgunSignature, EmailEventReceived]:
    """A JSON webhook body as its signature (to verify) and its event."""
    if content_type.partition(";")[0].strip().lower() != "application/json":
        raise MalformedPayload("mailgun: expected application/json", field="Content-Type")
    try:
        document = parse_json(body)
    except UnsafeInput as exc:
        raise MalformedPayload(f"mailgun: body is not acceptable JSON: {exc}", field=exc.path or None) from None
    if not isinstance(document, dict):
        raise MalformedPayload("mailgun: body must be a JSON object")
    return _signature(document.get("signature")), _event(document.get("event-data"))


def _signature(value: Any) -> MailgunSignature:
    if not isinstance(value, dict):
        raise MalformedPayload("mailgun: signature must be an object", field="signature")
    parts: dict[str, str] = {}
    for name in ("timestamp", "token", "signature"):
        part = value.get(name)
        # Mailgun sends the timestamp as a string; a number is the same value.
        if isinstance(part, int) and not isinstance(part, bool):
            part = str(part)
        if not isinstance(part, str) or not part or len(part) > MAX_TOKEN:
            raise MalformedPayload(f"mailgun: signature.{name} must be a non-empty string", field=f"signature.{name}")
        parts[name] = part
    return MailgunSignature(**parts)


def _event(data: Any) -> EmailEventReceived:
    if not isinstance(data, dict):
        raise MalformedPayload("mailgun: event-data must be an object", field="event-data")
    event_id = storable_id(data.get("id"), MAX_EXTERNAL_ID)
    if event_id is None:
        raise MalformedPayload("mailgun: event-data.id is missing", field="event-data.id")
    name = data.get("event")
    provider_event = name[:MAX_EVENT_NAME] if isinstance(name, str) else ""
    kind, bounce = _classify(provider_event, data)
    recipient = bounded_text(data.get("recipient"), MAX_RECIPIENT)
    if recipient is None and kind != "unknown":
        raise MalformedPayload("mailgun: event-data.recipient is missing", field="event-data.recipient")
    message_id = _message_id(data)
    client = _object(data.get("client-info"))
    bot = bounded_text(client.get("bot"), MAX_BOT)
    return EmailEventReceived(
        source="mailgun",
        external_id=event_id,
        kind=kind,
        provider_event=provider_event,
        recipient=recipient or "",
        occurred_at=_occurred_at(data.get("timestamp")),
        hub_message_id=row_id(_object(data.get("user-variables")).get("hub_message_id")),
        rfc_message_id=message_id,
        provider_message_id=message_id,
        url=bounded_text(data.get("url"), MAX_URL),
        user_agent=bounded_text(client.get("user-agent"), MAX_USER_AGENT),
        ip=bounded_text(data.get("ip"), MAX_IP),
        machine_flag=f"mailgun:bot={bot}" if bot else None,
        bounce=bounce,
        reason=_reason(data),
        categories=_tags(data.get("tags")),
        detail=_detail(data, client),
        payload=data,
    )


def _classify(provider_event: str, data: dict[str, Any]) -> tuple[str, str | None]:
    if provider_event != "failed":
        return KINDS.get(provider_event, ("unknown", None))
    severity, reason = data.get("severity"), data.get("reason")
    if severity == "permanent" and isinstance(reason, str) and reason in SUPPRESSED_REASONS:
        # Not a bounce: nothing was sent. Counting it as one would re-suppress for the wrong reason.
        return "dropped", None
    return FAILURES.get(severity, ("unknown", None)) if isinstance(severity, str) else ("unknown", None)


def _message_id(data: dict[str, Any]) -> str | None:
    headers = _object(_object(data.get("message")).get("headers"))
    value = bounded_text(headers.get("message-id"), MAX_MESSAGE_ID + 2)
    return bounded_text(value.strip("<>"), MAX_MESSAGE_ID) if value else None


def _reason(data: dict[str, Any]) -> str | None:
    status = _object(data.get("delivery-status"))
    candidates = (status.get("message"), status.get("description"), data.get("reason"))
    return next((text for text in (bounded_text(c, MAX_REASON) for c in candidates) if text), None)


def _detail(data: dict[str, Any], client: dict[str, Any]) -> dict[str, Any]:
    status = _object(data.get("delivery-status"))
    found = {
        "severity": data.get("severity"),
        "reason": data.get("reason"),
        "delivery_status_code": status.get("code"),
        "bot": client.get("bot"),
        "client_type": client.get("client-type"),
        "device_type": client.get("device-type"),
    }
    return {
        key: bounded_text(value, MAX_DETAIL_TEXT) if isinstance(value, str) else value
        for key, value in found.items()
        if value not in (None, "")
    }


def _occurred_at(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedPayload("mailgun: event-data.timestamp must be Unix seconds", field="event-data.timestamp")
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        moment = None
    if moment is None or not plausible_event_time(moment):
        raise MalformedPayload("mailgun: event-data.timestamp is out of range", field="event-data.timestamp")
    return moment


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    texts = (bounded_text(v, MAX_TAG) for v in value[:MAX_TAGS])
    return tuple(t for t in texts if t)


def _object(value: Any) -> dict[str, Any]:
    """Optional nested objects: anything else reads as empty, since Mailgun omits them freely."""
    return value if isinstance(value, dict) else {}
