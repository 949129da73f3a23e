"""GDPR erasure: remove or anonymise everything that identifies a contact, keep what reports count.

One transaction (the caller's), idempotent: a second erasure finds nothing personal left and changes nothing
but its own record. What goes and what stays is listed in docs/PRIVACY.md; in short:

- gone: identities, name, company, job title, custom fields, attribution beyond the utm codes, form payloads,
  note and task texts, email subjects, bodies and addresses, call numbers and caller names, recording URLs
  (the recordings are marked deleted, and the worker deletes their audio at Twilio: hub.privacy.recordings),
  IPs, user agents, clicked URLs, provider payloads, consent notes, and the cells, key and reason of
  lead-import rows that failed with one of its values (hub.privacy.imports);
- kept: the contact row (id, stage, owner, source, country, zone, tags, score), deals with amounts and stages,
  calls with durations and outcomes, messages and events with their statuses and times, timeline entries with
  their kind, time and codes/numbers (hub.privacy.rules), so funnels, activity and campaign stats still count;
- suppressions of its addresses stay as keyed hashes (hub.email.suppressions), so the address is not mailed
  again even if a new lead brings it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.calls.models import Call, CallRecording
from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact, ContactIdentity
from hub.contacts.normalize import Identity
from hub.db import lock_keys
from hub.deals.models import Deal, DealStageChange
from hub.email import suppressions
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.errors import NotFound
from hub.events import ATTRIBUTION_KEYS
from hub.inbox.models import InboundEvent
from hub.mail.outbox import STOPPED_PREFIX, cancel_unsent
from hub.notify.models import Notification
from hub.outbound.models import WebhookDelivery
from hub.privacy.imports import erase_import_errors
from hub.privacy.known import Known, known_values
from hub.privacy.models import ConsentEvent, ContactErasure
from hub.privacy.repository import chunks, deliveries_about, family_ids, owned_by
from hub.privacy.rules import ERASED, erased_key, keeps_string, mentions, scrub_payload
from hub.routing.models import Assignment, Deadline, StageChange
from hub.sequences import enrollment as enrollments
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry

KEPT_ATTRIBUTION = frozenset({"utm_source", "utm_medium", "utm_campaign"})
"""Campaign codes reports slice by; the rest (referrer, landing page, terms) can carry personal data."""
OPEN_TASKS = ("open", "overdue")


@dataclass
class ErasureReport:
    """How many rows an erasure changed, per kind (no personal data: safe for the audit log)."""

    contact_id: int
    contacts: int = 0
    identities: int = 0
    timeline_entries: int = 0
    form_submissions: int = 0
    calls: int = 0
    recordings: int = 0
    email_messages: int = 0
    messages_cancelled: int = 0
    email_events: int = 0
    suppressions_hashed: int = 0
    deals: int = 0
    deal_stage_changes: int = 0
    tasks: int = 0
    tasks_cancelled: int = 0
    enrollments_stopped: int = 0
    assignments: int = 0
    stage_changes: int = 0
    deadlines: int = 0
    notifications: int = 0
    webhook_deliveries: int = 0
    consent_notes: int = 0
    import_errors: int = 0

    def counts(self) -> dict[str, int]:
        """Every count by name (without the contact id)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "contact_id"}


async def erase_contact(session: AsyncSession, contact_id: int, *, actor: str, secret_key: str) -> ErasureReport:
    """Erase a live contact (and the contacts merged into it) in the caller's transaction; the counts.

    ``secret_key`` keys the hashes suppressions are kept as (the hub's secret key, as the send path uses)."""
    # The identities' locks first, in the order a form post takes them (identities, then the contact): a post for
    # the person that waits for this erasure then reads who owns the address after it (nobody) and starts a new
    # contact, instead of filling the erased one's name back in and leaving it without an identity.
    owned = await contacts_repo.identities_of_many(session, await family_ids(session, contact_id))
    await lock_keys(session, (Identity(kind, value).lock_key for pairs in owned.values() for kind, value in pairs))
    contact = await contacts_repo.contact_for_update(session, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist", field="contact_id")
    family = await family_ids(session, contact_id)  # again, under the lock: a merge may have finished meanwhile
    report = ErasureReport(contact_id=contact_id)
    known = await known_values(session, family)
    now = clock.now()
    # First, before anything is scrubbed: the contact's mail still unsent is cancelled and what is on the wire
    # is marked and locked, so a send loop recording its outcome waits for this erasure and then finds the row
    # erased, instead of writing the address back (a timeline entry, a bounce) into what was already scrubbed.
    report.messages_cancelled += await cancel_unsent(session, "erased", _messages_of(family, known))
    for member in family:
        stopped = await enrollments.stop_for_contact(session, member, "erased", "the contact was erased", now)
        report.enrollments_stopped += len(stopped)
    report.suppressions_hashed = await _hash_suppressions(session, family, known, secret_key)
    await _erase_contacts(session, family, report)
    await _erase_timeline(session, family, known, report)
    await _erase_calls(session, family, known, report)
    await _erase_email(session, family, known, report)
    await _erase_work(session, family, known, actor, report)
    await _erase_notifications(session, family, known, report)
    report.import_errors = await erase_import_errors(session, known)
    session.add(ContactErasure(contact_id=contact_id, actor=actor[:200], counts=report.counts(), erased_at=now))
    await session.flush()
    return report


async def _hash_suppressions(session: AsyncSession, family: Sequence[int], known: Known, key: str) -> int:
    hashed = await suppressions.hash_suppressions(session, known.emails, key=key)
    await session.execute(
        update(Suppression)
        .where(Suppression.contact_id.in_(family), Suppression.detail.is_not(None))
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )
    return hashed


async def _erase_contacts(session: AsyncSession, family: Sequence[int], report: ErasureReport) -> None:
    removed = await session.execute(
        ContactIdentity.__table__.delete().where(ContactIdentity.contact_id.in_(family))  # type: ignore[attr-defined]
    )
    report.identities = int(getattr(removed, "rowcount", 0) or 0)
    for contact in await session.scalars(select(Contact).where(Contact.id.in_(family))):
        attribution = {
            k: v
            for k, v in (contact.attribution or {}).items()
            if k in KEPT_ATTRIBUTION and isinstance(v, str) and keeps_string("source", v, ())
        }
        contact.name = contact.company = contact.job_title = None
        contact.custom_fields, contact.attribution = {}, attribution
        contact.updated_at = clock.now()
        report.contacts += 1
    assert set(KEPT_ATTRIBUTION) <= set(ATTRIBUTION_KEYS)


async def _erase_timeline(session: AsyncSession, family: Sequence[int], known: Known, report: ErasureReport) -> None:
    personal = known.all
    entry_ids: list[int] = []
    async for rows in chunks(session, TimelineEntry, owned_by(TimelineEntry, family)):
        for entry in rows:
            entry_ids.append(entry.id)
            entry.data = scrub_payload(entry.data, personal)
            if entry.external_id and mentions(entry.external_id, personal):
                entry.external_id = erased_key(entry.external_id)
            report.timeline_entries += 1
    where = owned_by(InboundEvent, family) | await _callbacks_of_calls(session, family)
    for start in range(0, len(entry_ids), 500):
        where = where | InboundEvent.timeline_entry_id.in_(entry_ids[start : start + 500])
    async for inbound in chunks(session, InboundEvent, where):
        for event in inbound:
            event.payload = scrub_payload(event.payload, personal)
            if mentions(event.external_id, personal):
                event.external_id = erased_key(event.external_id)
            report.form_submissions += 1


async def _callbacks_of_calls(session: AsyncSession, family: Sequence[int]) -> ColumnElement[bool]:
    """Twilio's stored callbacks about the family's calls, found by the keys hub/ingest.py stores them under.

    A leg reported before its call, and a recording reported before its call's status callbacks, were stored
    before they had a contact: the status callbacks of each call and leg are found by ``status:<CallSid>:``, and
    the recording callbacks by ``recording:<RecordingSid>:``.
    """
    own = select(Call.call_sid).where(owned_by(Call, family))
    calls = select(Call.id).where(Call.call_sid.in_(own) | Call.parent_call_sid.in_(own))
    call_sids = select(Call.call_sid).where(Call.id.in_(calls))
    prefixes = [f"status:{call_sid}:" for call_sid in await session.scalars(call_sids)]
    recordings = select(CallRecording.recording_sid).where(CallRecording.call_id.in_(calls))
    prefixes += [f"recording:{recording_sid}:" for recording_sid in await session.scalars(recordings)]
    keys = [InboundEvent.external_id.startswith(prefix, autoescape=True) for prefix in prefixes]
    return (InboundEvent.source == "twilio") & or_(false(), *keys)


async def _erase_calls(session: AsyncSession, family: Sequence[int], known: Known, report: ErasureReport) -> None:
    personal = known.all
    call_ids: list[int] = []
    async for rows in chunks(session, Call, owned_by(Call, family)):
        for call in rows:
            call_ids.append(call.id)
            for name in ("from_number", "to_number", "forwarded_from", "routed_to"):
                value = getattr(call, name)
                if value and mentions(value, personal):
                    setattr(call, name, ERASED if name in ("from_number", "to_number") else None)
            call.caller_name, call.geo = None, {}
            report.calls += 1
    for start in range(0, len(call_ids), 500):
        for recording in await session.scalars(
            select(CallRecording).where(CallRecording.call_id.in_(call_ids[start : start + 500]))
        ):
            recording.url, recording.status = None, "deleted"
            if recording.audio_deleted_at is None:
                # The audio lives at Twilio: the worker deletes it there (hub/privacy/recordings.py).
                recording.audio_delete_due_at = recording.audio_delete_due_at or clock.now()
            report.recordings += 1


def _messages_of(family: Sequence[int], known: Known) -> ColumnElement[bool]:
    """The erased contacts' email messages: theirs, or to one of their addresses."""
    return owned_by(EmailMessage, family) | EmailMessage.recipient.in_(sorted(known.emails))


async def _erase_email(session: AsyncSession, family: Sequence[int], known: Known, report: ErasureReport) -> None:
    personal = known.all
    emails = sorted(known.emails)
    # Status is never written here (erase_contact cancelled and marked by one guarded statement first): a send
    # loop may have handed a claimed row over meanwhile, and its status is then its own.
    async for rows in chunks(session, EmailMessage, _messages_of(family, known)):
        for message in rows:
            message.recipient, message.subject, message.html, message.text = ERASED, None, None, None
            if not (message.last_error or "").startswith(STOPPED_PREFIX):  # the mark stays; the rest may quote them
                message.last_error = None
            report.email_messages += 1
    async for events in chunks(session, EmailEvent, owned_by(EmailEvent, family) | EmailEvent.recipient.in_(emails)):
        for event in events:
            event.recipient, event.url, event.user_agent, event.ip, event.reason = ERASED, None, None, None, None
            event.data = scrub_payload(event.data, personal)
            if mentions(event.external_id, personal):
                event.external_id = erased_key(event.external_id)
            report.email_events += 1


async def _erase_work(
    session: AsyncSession, family: Sequence[int], known: Known, actor: str, report: ErasureReport
) -> None:
    """Deals and their stage log lose their titles and free text; amounts, stages and times stay."""
    personal = known.all
    async for deals in chunks(session, Deal, owned_by(Deal, family)):
        for deal in deals:
            deal.title, deal.custom_fields = ERASED, {}
            if deal.competitor and mentions(deal.competitor, personal):
                deal.competitor = None
            report.deals += 1
    async for changes in chunks(session, DealStageChange, owned_by(DealStageChange, family)):
        for change in changes:
            change.reason = None
            report.deal_stage_changes += 1
    await _erase_tasks(session, family, personal, actor, report)
    await _erase_routing(session, family, personal, report)


async def _erase_tasks(
    session: AsyncSession, family: Sequence[int], personal: list[str], actor: str, report: ErasureReport
) -> None:
    """Open tasks are cancelled (nobody should call an erased contact back); every task loses its texts."""
    async for tasks in chunks(session, Task, owned_by(Task, family)):
        for task in tasks:
            if task.status in OPEN_TASKS:
                # No done_at: the rep activity report counts tasks by done_at, and an erasure is no work done.
                task.status, task.done_by = "cancelled", actor[:200]
                task.next_check_at = None
                report.tasks_cancelled += 1
            task.title, task.note = None, None
            task.escalations = scrub_payload(task.escalations, personal)
            report.tasks += 1


async def _erase_routing(
    session: AsyncSession, family: Sequence[int], personal: list[str], report: ErasureReport
) -> None:
    """Assignments, stage changes, deadlines and consent notes: free text goes, codes and times stay."""
    async for assignments in chunks(session, Assignment, owned_by(Assignment, family)):
        for assignment in assignments:
            if mentions(assignment.reason, personal):
                assignment.reason = ERASED
            report.assignments += 1
    async for stage_changes in chunks(session, StageChange, owned_by(StageChange, family)):
        for stage_change in stage_changes:
            stage_change.reason = None
            report.stage_changes += 1
    async for deadlines in chunks(session, Deadline, owned_by(Deadline, family)):
        for deadline in deadlines:
            deadline.data = scrub_payload(deadline.data, personal)
            report.deadlines += 1
    async for consents in chunks(session, ConsentEvent, owned_by(ConsentEvent, family)):
        for consent in consents:
            if consent.note is not None:
                consent.note = None
                report.consent_notes += 1


async def _erase_notifications(
    session: AsyncSession, family: Sequence[int], known: Known, report: ErasureReport
) -> None:
    """Alerts about the contact, the emails that carried them to reps, and outbound webhook payloads."""
    personal = known.all
    notification_ids: list[int] = []
    async for notifications in chunks(session, Notification, owned_by(Notification, family)):
        for notification in notifications:
            notification_ids.append(notification.id)
            notification.message = ERASED
            notification.data = scrub_payload(notification.data, personal)
            report.notifications += 1
    for start in range(0, len(notification_ids), 500):
        keys = [f"notify:{n}:email" for n in notification_ids[start : start + 500]]
        await session.execute(
            update(EmailMessage)
            .where(EmailMessage.dedupe_key.in_(keys))
            .values(subject=ERASED, html=None, text=None)
            .execution_options(synchronize_session=False)
        )
    async for deliveries in chunks(session, WebhookDelivery, deliveries_about(family)):
        for delivery in deliveries:
            delivery.payload = _scrubbed_delivery(delivery.payload, personal)
            report.webhook_deliveries += 1


def _scrubbed_delivery(payload: dict[str, Any], personal: list[str]) -> dict[str, Any]:
    """The ``{type, timestamp, data}`` body with ``data`` scrubbed (ids, codes and numbers stay)."""
    return {
        "type": payload.get("type"),
        "timestamp": payload.get("timestamp"),
        "data": scrub_payload(payload.get("data") or {}, personal),
    }


def report_dict(report: ErasureReport) -> dict[str, Any]:
    """The report as JSON."""
    return asdict(report)
