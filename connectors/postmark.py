"""Postmark webhooks: Basic-auth check and per-RecordType event parsing."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from connectors.email_fields import bounded_text, digest_id, row_id
from connectors.errors import InvalidSignature, MalformedPayload
from hub import clock
from hub.events import EmailEventReceived
from hub.validation import UnsafeInput, as_utc, parse_json, plausible_event_time

MAX_RECIPIENT = 320
MAX_URL = 2000
MAX_USER_AGENT = 500
MAX_IP = 64
MAX_MESSAGE_ID = 300
MAX_REASON = 1000
MAX_EVENT_NAME = 60
MAX_TAG = 255
MAX_DETAIL_TEXT = 200
MAX_AUTHORIZATION = 1000

Classification = tuple[str, str | None]
"""Our (kind, bounce) for one event."""

BOUNCE_TYPES: dict[str, Classification] = {
    "HardBounce": ("bounced", "hard"),
    "BadEmailAddress": ("bounced", "hard"),
    "Blocked": ("bounced", "blocked"),
    "SpamComplaint": ("complained", None),
    "Unsubscribe": ("unsubscribed", None),
    "Subscribe": ("resubscribed", None),
}
"""A Bounce record's ``Type``; every other type (SoftBounce, Transient, DnsError, AutoResponder, ...) is soft."""

SOFT_BOUNCE: Classification = ("bounced", "soft")

UNSUBSCRIBED: Classification = ("unsubscribed", None)

SUPPRESSION_REASONS: dict[str, Classification] = {
    "HardBounce": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
}
"""Why a SubscriptionChange suppressed sending; any other reason (ManualSuppression, ...) is an unsubscribe."""


def _bounce_kind(record: dict[str, Any]) -> Classification:
    bounce_type = record.get("Type")
    return BOUNCE_TYPES.get(bounce_type, SOFT_BOUNCE) if isinstance(bounce_type, str) else SOFT_BOUNCE


def _subscription_kind(record: dict[str, Any]) -> Classification:
    suppress = record.get("SuppressSending")
    if suppress is False:
        return "resubscribed", None
    if suppress is not True:
        raise MalformedPayload("postmark: SuppressSending must be true or false", field="SuppressSending")
    reason = record.get("SuppressionReason")
    return SUPPRESSION_REASONS.get(reason, UNSUBSCRIBED) if isinstance(reason, str) else UNSUBSCRIBED


def _always(kind: str) -> Callable[[dict[str, Any]], Classification]:
    return lambda _record: (kind, None)


@dataclass(frozen=True)
class RecordType:
    """Where one Postmark RecordType keeps its time, recipient, reason and details, and how it classifies."""

    time_field: str
    recipient_field: str
    classify: Callable[[dict[str, Any]], Classification]
    reason_fields: tuple[str, ...] = ()
    detail_fields: tuple[str, ...] = ()


RECORD_TYPES = {
    "Delivery": RecordType("DeliveredAt", "Recipient", _always("delivered"), ("Details",)),
    "Bounce": RecordType(
        "BouncedAt", "Email", _bounce_kind, ("Details", "Description"), ("Type", "TypeCode", "Inactive", "CanActivate")
    ),
    "SpamComplaint": RecordType(
        "BouncedAt", "Email", _always("complained"), ("Details", "Description"), ("Type", "TypeCode", "Inactive")
    ),
    "Open": RecordType("ReceivedAt", "Recipient", _always("opened"), (), ("FirstOpen", "Platform", "ReadSeconds")),
    "Click": RecordType("ReceivedAt", "Recipient", _always("clicked"), (), ("ClickLocation", "Platform")),
    "SubscriptionChange": RecordType(
        "ChangedAt", "Recipient", _subscription_kind, ("SuppressionReason",), ("Origin", "SuppressionReason")
    ),
}
"""Postmark's ``RecordType`` to how it reads; any other record is stored as ``unknown``."""

TIME_FIELDS = ("ReceivedAt", "DeliveredAt", "BouncedAt", "ChangedAt")
"""Where an unknown RecordType's time is looked for, in this order, before an RFC 2822 ``Date`` (Inbound's)."""


def verify_postmark_basic_auth(user: str, password: str, authorization: str | None) -> None:
    """``Authorization: Basic base64(user:password)`` with both parts compared in constant time."""
    if not user or not password:
        raise InvalidSignature("postmark: webhook credentials are not configured")
    if not authorization:
        raise InvalidSignature("postmark: Authorization header is missing")
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidSignature("postmark: Authorization must use the Basic scheme")
    if len(encoded) > MAX_AUTHORIZATION:
        raise InvalidSignature("postmark: Authorization header is too long")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (ValueError, binascii.Error):  # also UnicodeDecodeError and non-ASCII header text
        raise InvalidSignature("postmark: Authorization Basic credentials are not base64 of user:password") from None
    given_user, colon, given_password = decoded.partition(":")
    if not colon:
        raise InvalidSignature("postmark: Authorization Basic credentials are not user:password")
    # Both compared, always: which half was wrong must not show in the timing.
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise InvalidSignature("postmark: Authorization credentials do not match")


def parse_postmark_event(body: bytes) -> EmailEventReceived:
    """One webhook body (a single JSON object with a ``RecordType``) as an EmailEventReceived."""
    try:
        record = parse_json(body)
    except UnsafeInput as exc:
        raise MalformedPayload(f"postmark: body is not acceptable JSON: {exc}", field=exc.path or None) from None
    if not isinstance(record, dict):
        raise MalformedPayload("postmark: body must be a JSON object")
    name = record.get("RecordType")
    provider_event = name[:MAX_EVENT_NAME] if isinstance(name, str) else ""
    reading = RECORD_TYPES.get(provider_event)
    if reading is None:
        return _unknown(provider_event, record)
    kind, bounce = reading.classify(record)
    recipient = bounded_text(record.get(reading.recipient_field), MAX_RECIPIENT)
    if recipient is None:
        raise MalformedPayload(f"postmark: {reading.recipient_field} is missing", field=reading.recipient_field)
    reasons = (bounded_text(record.get(field), MAX_REASON) for field in reading.reason_fields)
    return _event(
        record,
        provider_event=provider_event,
        kind=kind,
        bounce=bounce,
        recipient=recipient,
        occurred_at=_time(record, reading.time_field),
        reason=next((reason for reason in reasons if reason), None),
        detail=_detail(record, reading.detail_fields),
    )


def _unknown(provider_event: str, record: dict[str, Any]) -> EmailEventReceived:
    recipient = bounded_text(record.get("Recipient"), MAX_RECIPIENT) or bounded_text(record.get("Email"), MAX_RECIPIENT)
    return _event(
        record,
        provider_event=provider_event,
        kind="unknown",
        bounce=None,
        recipient=recipient or "",
        occurred_at=_unknown_time(record),
        reason=None,
        detail=_detail(record, ()),
    )


def _event(
    record: dict[str, Any],
    *,
    provider_event: str,
    kind: str,
    bounce: str | None,
    recipient: str,
    occurred_at: datetime,
    reason: str | None,
    detail: dict[str, Any],
) -> EmailEventReceived:
    metadata = record.get("Metadata")
    geo = record.get("Geo")
    tag = bounded_text(record.get("Tag"), MAX_TAG)
    return EmailEventReceived(
        source="postmark",
        external_id=_external_id(provider_event, record),
        kind=kind,
        provider_event=provider_event,
        recipient=recipient,
        occurred_at=occurred_at,
        hub_message_id=row_id(metadata.get("hub_message_id")) if isinstance(metadata, dict) else None,
        # Postmark reports only its own MessageID, never the Message-ID header.
        rfc_message_id=None,
        provider_message_id=bounded_text(record.get("MessageID"), MAX_MESSAGE_ID),
        url=bounded_text(record.get("OriginalLink"), MAX_URL),
        user_agent=bounded_text(record.get("UserAgent"), MAX_USER_AGENT),
        ip=bounded_text(geo.get("IP"), MAX_IP) if isinstance(geo, dict) else None,
        bounce=bounce,
        reason=reason,
        categories=(tag,) if tag else (),
        detail=detail,
        payload=record,
    )


def _external_id(provider_event: str, record: dict[str, Any]) -> str:
    # Bounce and spam-complaint records are rows in Postmark's bounce list, with an id of their own.
    bounce_id = row_id(record.get("ID"))
    if provider_event in ("Bounce", "SpamComplaint") and bounce_id is not None:
        return f"bounce:{bounce_id}"
    return digest_id(record)  # every other record has no id


def _time(record: dict[str, Any], field: str) -> datetime:
    value = record.get(field)
    if not isinstance(value, str):
        raise MalformedPayload(f"postmark: {field} is missing", field=field)
    try:
        # Python 3.11 reads Postmark's 7 fractional digits (to microseconds) and a trailing Z.
        moment = as_utc(datetime.fromisoformat(value))
    except ValueError:  # also UnsafeInput, for times that fall off the calendar in UTC
        raise MalformedPayload(f"postmark: {field} is not an ISO 8601 time", field=field) from None
    if not plausible_event_time(moment):
        raise MalformedPayload(f"postmark: {field} is out of range", field=field)
    return moment


def _unknown_time(record: dict[str, Any]) -> datetime:
    """The first readable time an unknown record carries, else now.

    Such a record is stored, never refused: Postmark retries a 400 for hours, and a time we cannot read is no
    reason to lose it (its retries still dedupe, on the body's digest).
    """
    for field in TIME_FIELDS:
        if field in record:
            with suppress(MalformedPayload):
                return _time(record, field)
    return _header_date(record.get("Date")) or clock.now()


def _header_date(value: object) -> datetime | None:
    """An RFC 2822 time (an Inbound record's ``Date``, copied from the email) as aware UTC; None when unusable."""
    if not isinstance(value, str):
        return None
    try:
        moment = as_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):  # also UnsafeInput
        return None
    return moment if plausible_event_time(moment) else None


def _detail(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for name in ("MessageStream", *fields):
        value = record.get(name)
        if value is not None:
            detail[name] = bounded_text(value, MAX_DETAIL_TEXT) if isinstance(value, str) else value
    return detail
