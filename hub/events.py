"""Canonical inbound events: the only shapes connectors and the hub share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ATTRIBUTION_KEYS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
    "landing_page",
    "gclid",
    "fbclid",
)


@dataclass(frozen=True)
class RawField:
    """A submitted value that should have been an identity; kept verbatim for the timeline."""

    field: str
    value: str


@dataclass(frozen=True)
class FormSubmitted:
    """A lead form was submitted (HTML form, signed server post, Typeform, API)."""

    source: str
    """Inbox source label, e.g. ``form:website`` or ``api``."""
    external_id: str
    """The sender's id for this submission; redelivery with the same id changes nothing."""
    occurred_at: datetime
    emails: tuple[RawField, ...] = ()
    phones: tuple[RawField, ...] = ()
    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    message: str | None = None
    country: str | None = None
    time_zone: str | None = None
    attribution: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    """Every other submitted field, kept on the timeline entry."""
    client: dict[str, str] = field(default_factory=dict)
    """Client IP and user agent, when the post came from a browser."""
    custom_fields: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


MAX_EXTERNAL_ID = 200
"""Length of the external-id columns (inbox and timeline)."""


def scoped_external_id(scope: str, value: str) -> str:
    """``scope:value``, or ``scope:sha256(value)`` when that would not fit the column.

    Scoping keeps one caller's idempotency keys from colliding with another's.
    """
    candidate = f"{scope}:{value}"
    if len(candidate) <= MAX_EXTERNAL_ID:
        return candidate
    return f"{scope}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"[:MAX_EXTERNAL_ID]


CALL_STATUSES = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "canceled",
    "failed",
)
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})


@dataclass(frozen=True)
class CallProgressed:
    """Where one call leg stands: Twilio's incoming-call webhook or a status callback."""

    call_sid: str
    account_sid: str
    status: str
    """One of CALL_STATUSES."""
    direction: str
    """``inbound``, ``outbound-api`` or ``outbound-dial`` (a child leg created by <Dial>)."""
    from_number: str
    """E.164, ``client:<identity>``, a SIP URI, or what the carrier sent (e.g. ``anonymous``)."""
    to_number: str
    occurred_at: datetime
    parent_call_sid: str | None = None
    sequence: int | None = None
    """Twilio's SequenceNumber: the order of callbacks within one call leg."""
    duration_seconds: int | None = None
    """CallDuration, on final callbacks."""
    answered_by: str | None = None
    sip_response_code: int | None = None
    caller_name: str | None = None
    forwarded_from: str | None = None
    geo: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    """Every received parameter (last value wins), for the inbox."""

    @property
    def dedupe_key(self) -> str:
        """One callback of one leg; a redelivery has the same key."""
        return f"{self.call_sid}:{self.sequence if self.sequence is not None else '-'}:{self.status}"


@dataclass(frozen=True)
class DialEnded:
    """The <Dial> of an inbound call ended: Twilio asks its ``action`` URL what to do next."""

    call_sid: str
    account_sid: str
    dial_status: str
    """DialCallStatus: completed, answered, busy, no-answer, failed, canceled."""
    occurred_at: datetime
    dial_call_sid: str | None = None
    dial_duration_seconds: int | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordingChanged:
    """A recording status callback: a call's recording is ready, absent or failed."""

    call_sid: str
    account_sid: str
    recording_sid: str
    status: str
    """in-progress, completed, absent or failed."""
    occurred_at: datetime
    url: str | None = None
    duration_seconds: int | None = None
    channels: int | None = None
    source: str | None = None
    """RecordingSource, e.g. DialVerb (the conversation) or RecordVerb (a voicemail)."""
    track: str | None = None
    started_at: datetime | None = None
    error_code: str | None = None
    params: dict[str, str] = field(default_factory=dict)


EMAIL_EVENT_KINDS = (
    "processed",
    "deferred",
    "delivered",
    "dropped",
    "bounced",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
    "resubscribed",
    "unknown",
)


@dataclass(frozen=True)
class EmailEventReceived:
    """One email event from a provider's webhook or from the hub's own tracking endpoints."""

    source: str
    """``sendgrid``, ``mailgun``, ``postmark`` or ``hub`` (pixel, click, unsubscribe)."""
    external_id: str
    """The provider's event id (or a digest of the event when it has none); dedupe key."""
    kind: str
    """One of EMAIL_EVENT_KINDS."""
    provider_event: str
    """The provider's own name for it, e.g. ``group_unsubscribe`` or ``failed``."""
    recipient: str
    occurred_at: datetime
    hub_message_id: int | None = None
    """The hub's id of the email, from a tracking token or the ``hub_message_id`` custom argument."""
    rfc_message_id: str | None = None
    """The Message-ID header without angle brackets, when the provider reports it."""
    provider_message_id: str | None = None
    url: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    machine_flag: str | None = None
    """The provider's own verdict that a machine caused this open/click, e.g. ``sendgrid:sg_machine_open``."""
    request_method: str | None = None
    """HTTP method of a tracking hit (``HEAD`` is a link scanner)."""
    bounce: str | None = None
    """``hard``, ``soft`` or ``blocked`` for bounces."""
    reason: str | None = None
    categories: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    """The event as received, for the inbox."""
