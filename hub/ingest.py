"""The ingest pipeline of form submissions and call callbacks: inbound event -> inbox row, contact, timeline entry.

Everything here runs in the caller's transaction; the caller commits, and only then
answers the provider. Calls (hub/calls/service.py) and email events (hub/email/service.py)
follow the same shape: dedupe on the provider's id first, then contact, then timeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls import service as calls
from hub.contacts import service as contacts
from hub.contacts.normalize import Identity, InvalidIdentity, normalize_email, normalize_phone
from hub.db import retry_transient
from hub.errors import UnprocessableInput
from hub.events import CallProgressed, FormSubmitted, RecordingChanged
from hub.inbox import service as inbox
from hub.privacy import consent
from hub.privacy.rules import scrub_payload
from hub.timeline import service as timeline

FORM_SUBMISSION = "form_submission"
MAX_IDENTITIES_PER_KIND = 5
"""More emails or phones than this in one submission is a list, not a person."""


@dataclass(frozen=True)
class InvalidValue:
    """A submitted value that is not a usable identity, kept verbatim and flagged."""

    field: str
    value: str
    reason: str


@dataclass(frozen=True)
class IngestOutcome:
    """What one submission did."""

    event_id: int | None
    contact_id: int | None
    timeline_entry_id: int | None
    contact_created: bool = False
    duplicate: bool = False
    spam: bool = False
    absorbed_contact_ids: list[int] = field(default_factory=list)
    invalid: list[InvalidValue] = field(default_factory=list)


def normalize_identities(event: FormSubmitted, default_region: str) -> tuple[list[Identity], list[InvalidValue]]:
    """Usable identities of a submission, and the values that were not usable."""
    identities: list[Identity] = []
    invalid: list[InvalidValue] = []
    for kind, values in (("email", event.emails), ("phone", event.phones)):
        if len(values) > MAX_IDENTITIES_PER_KIND:
            raise UnprocessableInput(
                f"at most {MAX_IDENTITIES_PER_KIND} {kind} values per submission (got {len(values)})", field=kind
            )
    for raw in event.emails:
        try:
            identities.append(Identity("email", normalize_email(raw.value)))
        except InvalidIdentity as exc:
            invalid.append(InvalidValue(raw.field, raw.value, exc.reason))
    for raw in event.phones:
        try:
            identities.append(Identity("phone", normalize_phone(raw.value, default_region, keep_extension=True)))
        except InvalidIdentity as exc:
            invalid.append(InvalidValue(raw.field, raw.value, exc.reason))
    return list(dict.fromkeys(identities)), invalid


def form_inbox_row(event: FormSubmitted) -> inbox.InboxRow:
    """The inbox row of a (not spam) form submission."""
    return inbox.InboxRow(event.source, event.external_id, FORM_SUBMISSION, inbox.PROCESSING, _payload(event))


def form_lock_keys(event: FormSubmitted, default_region: str) -> list[str]:
    """The keys its contact's resolution locks (none for a submission its ingest refuses)."""
    try:
        identities, _ = normalize_identities(event, default_region)
    except UnprocessableInput:
        return []
    return [identity.lock_key for identity in identities]


def require_identity(identities: list[Identity], invalid: list[InvalidValue]) -> None:
    """Refuse a submission with no usable email and no usable phone, naming the fields."""
    if identities:
        return
    if invalid:
        detail = "; ".join(f"{v.field}: {v.reason}" for v in invalid)
        raise UnprocessableInput(f"no usable email or phone ({detail})", field=",".join(v.field for v in invalid))
    raise UnprocessableInput("an email or a phone number is required", field="email,phone")


async def ingest_form_submission(session: AsyncSession, event: FormSubmitted, *, default_region: str) -> IngestOutcome:
    """Record a lead form submission on its contact's timeline, exactly once per external id."""
    identities, invalid = normalize_identities(event, default_region)
    require_identity(identities, invalid)
    return await retry_transient(session, lambda: _ingest(session, event, identities, invalid))


async def _ingest(
    session: AsyncSession, event: FormSubmitted, identities: list[Identity], invalid: list[InvalidValue]
) -> IngestOutcome:
    recorded = await inbox.record_row(session, form_inbox_row(event))
    if recorded.duplicate:
        return await _earlier_outcome(session, recorded)
    resolution = await contacts.resolve_contact(
        session,
        identities,
        contacts.Profile(
            name=event.name,
            company=event.company,
            job_title=event.job_title,
            country=event.country,
            time_zone=event.time_zone,
            custom_fields=event.custom_fields,
        ),
        source=event.source,
        attribution=event.attribution,
        merge_reason=f"a submission from {event.source} carried identities of several contacts",
    )
    entry = await timeline.append(
        session,
        contact_id=resolution.contact.id,
        kind=FORM_SUBMISSION,
        source=event.source,
        external_id=event.external_id,
        occurred_at=event.occurred_at,
        data=_entry_data(event, identities, invalid),
    )
    await inbox.mark_processed(session, recorded.event_id, contact_id=resolution.contact.id, timeline_entry_id=entry.id)
    await consent.consent_from_form(session, resolution.contact.id, event)  # a marketing-consent checkbox
    return IngestOutcome(
        event_id=recorded.event_id,
        contact_id=resolution.contact.id,
        timeline_entry_id=entry.id,
        contact_created=resolution.created,
        absorbed_contact_ids=resolution.absorbed_ids,
        invalid=invalid,
    )


async def record_spam(session: AsyncSession, event: FormSubmitted, *, reason: str) -> IngestOutcome:
    """Keep a bot submission for review; it never becomes a lead."""
    recorded = await inbox.record(
        session,
        source=event.source,
        external_id=event.external_id,
        kind=FORM_SUBMISSION,
        status=inbox.SPAM,
        spam_reason=reason,
        payload=_payload(event),
    )
    return IngestOutcome(
        event_id=recorded.event_id, contact_id=None, timeline_entry_id=None, spam=True, duplicate=recorded.duplicate
    )


async def _earlier_outcome(session: AsyncSession, recorded: inbox.Recorded) -> IngestOutcome:
    earlier = recorded.existing
    assert earlier is not None
    contact_id = await contacts.survivor_id(session, earlier.contact_id) if earlier.contact_id else None
    return IngestOutcome(
        event_id=earlier.id,
        contact_id=contact_id,
        timeline_entry_id=earlier.timeline_entry_id,
        duplicate=True,
        spam=earlier.status == inbox.SPAM,
    )


def _payload(event: FormSubmitted) -> dict[str, Any]:
    return {
        "emails": [r.value for r in event.emails],
        "phones": [r.value for r in event.phones],
        "name": event.name,
        "company": event.company,
        "message": event.message,
        "fields": event.fields,
        "attribution": event.attribution,
        "client": event.client,
        "occurred_at": event.occurred_at.isoformat(),
    }


def _entry_data(event: FormSubmitted, identities: list[Identity], invalid: list[InvalidValue]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "emails": [i.value for i in identities if i.kind == "email"],
        "phones": [i.value for i in identities if i.kind == "phone"],
        "name": event.name,
        "company": event.company,
        "job_title": event.job_title,
        "message": event.message,
        "fields": event.fields,
        "attribution": event.attribution,
        "client": event.client,
        "tags": list(event.tags),
    }
    if invalid:
        data["invalid"] = [{"field": v.field, "value": v.value, "reason": v.reason} for v in invalid]
    return {k: v for k, v in data.items() if v not in (None, {}, [])}


async def ingest_call_status(session: AsyncSession, event: CallProgressed, *, default_region: str) -> bool:
    """Store a status callback once per (CallSid, SequenceNumber, CallStatus) and apply it; False for a redelivery."""

    async def apply(inbox_id: int) -> tuple[int | None, int | None]:
        call = await calls.record_progress(session, event, default_region=default_region)
        if calls.was_erased(call):
            # Twilio retries, and a call's last callbacks may come after its contact was erased: keep what erasure
            # keeps of the callbacks it found (statuses, durations, sids), not the numbers and name they repeat.
            await inbox.replace_payload(session, inbox_id, scrub_payload(event.params, calls.personal_values(event)))
        return call.contact_id, call.timeline_entry_id

    return await _store_once(session, call_status_inbox_row(event), apply)


def call_status_inbox_row(event: CallProgressed) -> inbox.InboxRow:
    """The inbox row of a status callback: one per (CallSid, SequenceNumber, CallStatus)."""
    return _twilio_row(f"status:{event.dedupe_key}", "call_status", event.params)


async def ingest_recording(session: AsyncSession, event: RecordingChanged) -> bool:
    """Attach a recording status callback to its call once; False for a redelivery."""

    async def apply(inbox_id: int) -> tuple[int | None, int | None]:
        _, call = await calls.record_recording(session, event)
        if calls.was_erased(call):  # its RecordingUrl leads to the erased contact's voice
            await inbox.replace_payload(session, inbox_id, scrub_payload(event.params, [event.url or ""]))
        # The call's contact's, so that an export lists it and an erasure finds it (one reported before the call's
        # status callbacks has no contact yet: the erasure finds it by its RecordingSid).
        return call.contact_id, call.timeline_entry_id

    return await _store_once(session, recording_inbox_row(event), apply)


def recording_inbox_row(event: RecordingChanged) -> inbox.InboxRow:
    """The inbox row of a recording status callback: one per recording and status."""
    return _twilio_row(f"recording:{event.recording_sid}:{event.status}", "recording_status", event.params)


def _twilio_row(external_id: str, kind: str, payload: dict[str, str]) -> inbox.InboxRow:
    return inbox.InboxRow("twilio", external_id[:200], kind, inbox.PROCESSING, payload)


async def _store_once(
    session: AsyncSession, row: inbox.InboxRow, apply: Callable[[int], Awaitable[tuple[int | None, int | None]]]
) -> bool:
    """A Twilio callback in the inbox under its dedupe key, applied once (``apply`` gets the inbox row's id); a
    redelivery changes nothing."""
    recorded = await inbox.record_row(session, row)
    if recorded.duplicate:
        return False
    contact_id, entry_id = await retry_transient(session, lambda: apply(recorded.event_id))
    await inbox.mark_processed(session, recorded.event_id, contact_id=contact_id, timeline_entry_id=entry_id)
    return True
