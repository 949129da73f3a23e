"""Running sequences: claim the enrollments whose next step is due and queue each step's email.

One call handles one batch in the caller's transaction: the claim locks the due rows (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, a simple single-table query), and each enrollment either waits (paused
sequence, quiet hours, frequency cap), stops (suppressed, merged, closed), skips its step (its ``when``
does not hold) or queues the step's message through the outbox and moves on. The batch's messages are
rendered once every enrollment was looked at and inserted in one statement (``hub.mail.outbox``). The
message's dedupe key ``seq:<enrollment>:<step>`` makes a step queued twice impossible, whatever the
workers do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import BigInteger, Select, bindparam, func, literal, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.contacts import repository as contacts_repo
from hub.contacts.facts import lead_snapshot
from hub.contacts.models import Contact
from hub.db import advisory_key
from hub.email import suppressions
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker, Tracking
from hub.mail.outbox import Envelope, allocate_message_ids, final_bodies, insert_messages, message_row
from hub.policy.conditions import matches
from hub.policy.facts import lead_facts
from hub.policy.schemas import RulesFile
from hub.privacy.consent import consent_of_many
from hub.reps.models import Rep, Team
from hub.sequences import enrollment as enrollments
from hub.sequences import turnstile
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import SequenceSpec, Step, Variant
from hub.sequences.steps import dedupe_key, step_facts, tracking_of, variant_of
from hub.sequences.steps import draw_variant as draw_variant
from hub.sequences.templates import TemplateLibrary
from hub.sequences.variables import SequenceSender, email_context, sender_of
from hub.sequences.windows import contact_zones, due_after, next_send_time
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

log = logging.getLogger(__name__)

PAUSED_RECHECK = timedelta(hours=1)
"""A paused sequence's enrollments look again this often (resuming makes them due at once anyway)."""
BUSY_RETRY = timedelta(minutes=1)
"""An enrollment whose contact another worker is capping right now tries again this much later."""
SEQUENCE_BUSY_RETRY = timedelta(seconds=30)
"""An enrollment whose sequence is being paused or resumed right now looks again this much later."""
CAPPED_STATUSES = ("queued", "held", "sending", "sent", "delivered")
RENDER_SLICE = 2
"""Emails rendered between two yields to the event loop, so a worker's send lanes are not kept waiting."""
DECIDE_SLICE = 10
"""Enrollments looked at between two yields to the event loop."""
_TRY_LOCKS = text("SELECT key, pg_try_advisory_xact_lock(key) FROM unnest(:keys) AS key").bindparams(
    bindparam("keys", type_=ARRAY(BigInteger))
)


@dataclass
class StepReport:
    """What one batch did."""

    claimed: int = 0
    queued: int = 0
    skipped: int = 0
    waiting: int = 0
    completed: int = 0
    stopped: int = 0


@dataclass
class _Batch:
    """What the batch loaded once for all its enrollments."""

    settings: Settings
    links: LinkMaker
    library: TemplateLibrary
    policy: RulesFile
    now: datetime
    sequences: dict[int, tuple[Sequence, SequenceSpec | None]]
    contacts: dict[int, Contact]
    identities: dict[int, list[tuple[str, str]]]
    suppressed: set[str]
    owners: dict[int, Rep]
    team_zones: dict[int, str]
    """Zone of each owner's team: a contact with no zone of its own and no usable phone uses it."""
    capped: dict[int, list[datetime]]
    """Per contact, when its marketing messages inside the cap window were queued (oldest first)."""
    busy: set[int]
    """Contacts another worker holds the frequency-cap lock of."""
    report: StepReport
    consent: dict[int, str]
    """Marketing-email consent (``given``/``withdrawn``) of the contacts in sequences that require it."""
    to_queue: list[_StepToQueue] = field(default_factory=list)
    """Steps decided on, queued together once every enrollment of the batch was looked at."""
    entries: list[TimelineEntry] = field(default_factory=list)
    """Timeline entries (completions) appended together at the end of the batch."""
    senders: dict[int, SequenceSender] = field(default_factory=dict)
    """Each sequence's sender, worked out once per batch rather than once per message."""

    def sender(self, sequence: Sequence, spec: SequenceSpec) -> SequenceSender:
        """The sequence's sender (``sender_of``)."""
        found = self.senders.get(sequence.id)
        if found is None:
            found = self.senders[sequence.id] = sender_of(spec, self.settings.mail_from)
        return found


@dataclass
class _StepToQueue:
    """One enrollment's step that is to be queued, with what rendering it needs."""

    enrollment: Enrollment
    sequence: Sequence
    spec: SequenceSpec
    step: Step
    contact: Contact
    identities: Seq[tuple[str, str]]
    email: str


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Enrollment]:
    """Due active enrollments, oldest due first, locked; rows another worker holds are skipped."""
    stmt = (
        select(Enrollment)
        .where(Enrollment.status == "active", Enrollment.next_run_at <= now)
        .order_by(Enrollment.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(stmt)).all())


async def run_due_steps(
    session: AsyncSession,
    *,
    settings: Settings,
    links: LinkMaker,
    library: TemplateLibrary,
    policy: RulesFile,
    now: datetime,
    limit: int,
) -> StepReport:
    """Claim up to ``limit`` due enrollments and act on each; the caller commits."""
    report = StepReport()
    claimed = await claim_due(session, now, limit)
    report.claimed = len(claimed)
    if not claimed:
        return report
    batch = await _load(session, claimed, settings, links, library, policy, now, report)
    for n, enrollment in enumerate(claimed, start=1):
        await _run_one(session, enrollment, batch)
        if n % DECIDE_SLICE == 0:
            await asyncio.sleep(0)  # the send loop's lanes share this event loop (see RENDER_SLICE)
    await _queue_steps(session, batch)
    await timeline.append_many(session, batch.entries)
    await session.flush()
    return report


async def _load(
    session: AsyncSession,
    claimed: list[Enrollment],
    settings: Settings,
    links: LinkMaker,
    library: TemplateLibrary,
    policy: RulesFile,
    now: datetime,
    report: StepReport,
) -> _Batch:
    sequences = {s.id: (s, _spec_or_none(s)) for s in await _share_sequences(session, claimed)}
    contact_ids = sorted({e.contact_id for e in claimed})
    contacts = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
    identities = await contacts_repo.identities_of_many(session, contact_ids)
    emails = [_email_of(identities.get(c, [])) for c in contact_ids]
    suppressed = await suppressions.suppressed_among(session, [e for e in emails if e], keys=links.keys)
    owner_ids = {c.owner_rep_id for c in contacts.values() if c.owner_rep_id is not None}
    owners = {r.id: r for r in await session.scalars(select(Rep).where(Rep.id.in_(owner_ids)))} if owner_ids else {}
    marketing = sorted(
        {e.contact_id for e in claimed if (spec := sequences.get(e.sequence_id, (None, None))[1]) and spec.marketing}
    )
    team_ids = {r.team_id for r in owners.values() if r.team_id is not None}
    teams = {t.id: t.time_zone for t in await session.scalars(select(Team).where(Team.id.in_(team_ids)))}
    team_zones = {r.id: teams[r.team_id] for r in owners.values() if r.team_id in teams}
    busy = await _lock_caps(session, marketing) if settings.frequency_cap else set()
    capped = await _recent_marketing(session, [c for c in marketing if c not in busy], settings, now)
    needs_consent = {
        e.contact_id
        for e in claimed
        if (spec := sequences.get(e.sequence_id, (None, None))[1]) and spec.requires_consent
    }
    consent = await consent_of_many(session, needs_consent) if needs_consent else {}
    return _Batch(
        settings,
        links,
        library,
        policy,
        now,
        sequences,
        contacts,
        identities,
        suppressed,
        owners,
        team_zones,
        capped,
        busy,
        report,
        consent,
    )


async def _share_sequences(session: AsyncSession, claimed: list[Enrollment]) -> Seq[Sequence]:
    """The claimed enrollments' sequences, share-locked until the batch commits (PostgreSQL).

    A pause (or resume, or circuit breaker) locks its sequence's row before it holds the queued mail, so it
    waits for a batch that read the sequence as active and then holds what that batch queued; a sequence a
    pause is changing right now, or waiting to change (``turnstile``: it would otherwise wait for batch after
    batch), is skipped (never waited for: a resume locks the sequence, then the enrollments this batch holds),
    and its enrollments are looked at again shortly.
    """
    wanted = {e.sequence_id for e in claimed}
    query = select(Sequence).where(Sequence.id.in_(wanted - await turnstile.enter_together(session, wanted)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True, skip_locked=True)
    return (await session.scalars(query)).all()


def _spec_or_none(sequence: Sequence) -> SequenceSpec | None:
    try:
        return enrollments.spec_of(sequence)
    except ValidationError:
        log.warning("sequence %d has a definition this version cannot read; its enrollments wait", sequence.id)
        return None


def _email_of(identities: Seq[tuple[str, str]]) -> str | None:
    return next((value for kind, value in identities if kind == "email"), None)


async def _lock_caps(session: AsyncSession, contact_ids: list[int]) -> set[int]:
    """Take each contact's frequency-cap lock (PostgreSQL); the contacts another worker holds.

    Try-locks, never waits: two workers each holding some contacts and waiting for the other's would
    deadlock, and an enrollment can simply look again a minute later. One statement for the batch.
    """
    if session.get_bind().dialect.name != "postgresql" or not contact_ids:
        return set()
    if not await session.scalar(_TRY_EVERY_CAP_SHARED, {"key": EVERY_CAP_KEY}):
        return set(contact_ids)  # a resume is timing a campaign's held emails against every cap: next round
    keys = {advisory_key(f"frequency-cap:{contact_id}"): contact_id for contact_id in contact_ids}
    rows = await session.execute(_TRY_LOCKS, {"keys": list(keys)})
    return {keys[int(row[0])] for row in rows if not row[1]}


EVERY_CAP_KEY = advisory_key("frequency-cap:*")
"""Taken shared by each step runner batch besides its contacts' cap locks, and alone, exclusively, by a resume with
more contacts than it can lock one by one (hub.sequences.held_mail.CAP_LOCKS_AT_MOST)."""
_TRY_EVERY_CAP_SHARED = text("SELECT pg_try_advisory_xact_lock_shared(:key)")


async def _recent_marketing(
    session: AsyncSession, contact_ids: list[int], settings: Settings, now: datetime
) -> dict[int, list[datetime]]:
    """When each contact's marketing messages inside the cap window count from, oldest first: the latest of when
    each was queued, is due (a retry, or mail a resumed sequence had held) and was sent, so an email held through
    a long pause counts from its release, not from before the pause."""
    if not settings.frequency_cap or not contact_ids:
        return {}
    since = now - timedelta(hours=settings.frequency_cap_hours)
    contact_ids = sorted(set(contact_ids))  # a contact asked twice would have each email counted twice
    found: dict[int, list[datetime]] = {c: [] for c in contact_ids}
    postgresql = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(contact_ids), 500):
        chunk = contact_ids[start : start + 500]
        rows = await session.execute(_marketing_by_contact(chunk, since) if postgresql else _marketing_of(chunk, since))
        for contact_id, created_at, due_at, sent_at in rows:
            if contact_id is not None:
                found[contact_id].append(max(t for t in (created_at, due_at, sent_at) if t is not None))
    for times in found.values():
        times.sort()
    return found


def _counted_marketing(since: datetime) -> Select[Any]:
    m = EmailMessage
    columns: tuple[Any, ...] = (m.contact_id, m.created_at, m.next_attempt_at, m.sent_at)
    return select(*columns).where(
        m.marketing.is_(True),
        m.status.in_(CAPPED_STATUSES),
        (m.created_at > since) | (m.next_attempt_at > since) | (m.sent_at > since),
    )


def _marketing_of(contact_ids: list[int], since: datetime) -> Select[Any]:
    """The counted emails of ``contact_ids`` (any database)."""
    return _counted_marketing(since).where(EmailMessage.contact_id.in_(contact_ids))


def _marketing_by_contact(contact_ids: list[int], since: datetime) -> Select[Any]:
    """The same on PostgreSQL, as one index look-up per contact whatever the statistics say.

    Without statistics on ``email_messages`` (a new database's first campaign, before autovacuum's first ANALYZE)
    the planner takes ``contact_id IN (...)`` of a batch's contacts to match half the table, and scanned all of it
    for every batch: 20 ms per batch of 100 at 15,000 messages, growing with each message queued. A lateral
    subquery that cannot be pulled up into a join (its OFFSET) leaves it one plan: a look-up by contact."""
    asked = func.unnest(literal(contact_ids, ARRAY(BigInteger))).table_valued("id").render_derived("asked")
    per_contact = _counted_marketing(since).where(EmailMessage.contact_id == asked.c.id).offset(0).lateral("counted")
    return select(*per_contact.c).select_from(asked).join(per_contact, true())


async def _run_one(session: AsyncSession, enrollment: Enrollment, batch: _Batch) -> None:
    """Wait, stop, skip or queue: one enrollment's due step."""
    now, report = batch.now, batch.report
    sequence, spec = batch.sequences.get(enrollment.sequence_id, (None, None))
    if sequence is None:  # being paused or resumed right now (an enrollment's sequence is never deleted)
        enrollment.next_run_at = now + SEQUENCE_BUSY_RETRY
        report.waiting += 1
        return
    if spec is None or sequence.status != "active":
        enrollment.next_run_at, enrollment.wait_reason = now + PAUSED_RECHECK, "paused"
        report.waiting += 1
        return
    contact = batch.contacts.get(enrollment.contact_id)
    identities = batch.identities.get(enrollment.contact_id, [])
    email = _email_of(identities)
    stop = _stop_reason(enrollment, spec, contact, email, batch)
    if stop is not None:
        await enrollments.stop(session, enrollment, stop[0], stop[1], now, sequence=sequence)
        report.stopped += 1
        return
    assert contact is not None and email is not None
    if enrollment.step_index >= len(spec.steps):
        _advance(enrollment, sequence, spec, contact, identities, batch)
        return
    step = spec.steps[enrollment.step_index]
    if spec.requires_consent and batch.consent.get(contact.id) != "given":
        await _record_skip(session, enrollment, sequence, step, now, reason="no_consent")
        report.skipped += 1
        _advance(enrollment, sequence, spec, contact, identities, batch)
        return
    if step.when is not None and not await _condition_holds(session, enrollment, spec, step, contact):
        await _record_skip(session, enrollment, sequence, step, now)
        report.skipped += 1
        _advance(enrollment, sequence, spec, contact, identities, batch)
        return
    zones = _zones(contact, identities, batch)
    send_at = next_send_time(now, spec.window, zones)
    if send_at > now:
        enrollment.next_run_at, enrollment.wait_reason = send_at, "quiet_hours"
        report.waiting += 1
        return
    if spec.marketing and batch.settings.frequency_cap:
        free_at = _cap_frees_at(contact.id, batch)
        if free_at is not None:
            enrollment.next_run_at, enrollment.wait_reason = free_at, "frequency_cap"
            report.waiting += 1
            return
    if spec.marketing:
        # Counted now, so a second enrollment of the same contact in this batch sees the cap.
        batch.capped.setdefault(contact.id, []).append(now)
    batch.to_queue.append(_StepToQueue(enrollment, sequence, spec, step, contact, identities, email))


def _stop_reason(
    enrollment: Enrollment, spec: SequenceSpec, contact: Contact | None, email: str | None, batch: _Batch
) -> tuple[str, str | None] | None:
    """Why the enrollment must stop now rather than send, if it must."""
    if contact is None or contact.merged_into_id is not None:
        return "contact_merged", f"merged into contact {contact.merged_into_id}" if contact else "contact gone"
    if email is None:
        return "no_email", "the contact has no email address"
    if email in batch.suppressed:
        return "suppressed", "the address is on the suppression list"
    if spec.requires_consent and batch.consent.get(contact.id) == "withdrawn":
        return "consent_withdrawn", "the contact withdrew consent to marketing email"
    stage = batch.policy.pipeline.stage(contact.stage)
    # A sequence started by reaching a won stage (onboarding) is not stopped by being in it, however the contact was
    # enrolled (by that trigger, or by hand through the API for a customer won before the sequence existed).
    if stage is not None and stage.outcome is not None and not _started_by(spec, enrollment, contact.stage):
        return stage.outcome, f"stage {contact.stage}"
    if contact.stage in spec.exit_stages:
        return "exit_stage", f"stage {contact.stage}"
    return None


def _started_by(spec: SequenceSpec, enrollment: Enrollment, stage: str) -> bool:
    """True when reaching ``stage`` starts the sequence (one of its triggers), or started this enrollment (a
    trigger since removed from the definition)."""
    return enrollment.trigger == f"stage:{stage}" or any(trigger.stage == stage for trigger in spec.triggers)


def _zones(contact: Contact, identities: Seq[tuple[str, str]], batch: _Batch) -> tuple[ZoneInfo, ...]:
    """The contact's zone, else its phone's, else its owner's team's, else HUB_DEFAULT_TIME_ZONE."""
    phones = [value for kind, value in identities if kind == "phone"]
    owner = contact.owner_rep_id
    fallback = batch.team_zones.get(owner, batch.settings.default_time_zone) if owner else None
    return contact_zones(contact.time_zone, phones, fallback or batch.settings.default_time_zone)


def _cap_frees_at(contact_id: int, batch: _Batch) -> datetime | None:
    """When the contact may get another marketing email, or None if it may now."""
    if contact_id in batch.busy:
        return batch.now + BUSY_RETRY
    cap, times = batch.settings.frequency_cap, batch.capped.get(contact_id, [])
    if len(times) < cap:
        return None
    # The window must lose len - cap + 1 messages: the one at index len - cap is the last of those to leave.
    return times[len(times) - cap] + timedelta(hours=batch.settings.frequency_cap_hours)


async def _condition_holds(
    session: AsyncSession, enrollment: Enrollment, spec: SequenceSpec, step: Step, contact: Contact
) -> bool:
    assert step.when is not None
    facts: dict[str, Any] = lead_facts(await lead_snapshot(session, contact))
    facts.update(await step_facts(session, enrollment, spec))
    return matches(step.when, facts)


async def _queue_steps(session: AsyncSession, batch: _Batch) -> None:
    """Queue the batch's steps and move their enrollments on: ids first, then each email rendered, then every
    row inserted in one statement; an enrollment whose email fails (its template, or anything else building it)
    is stopped instead."""
    items = batch.to_queue
    ids = await allocate_message_ids(session, len(items))
    drafts = []
    for n, (item, message_id) in enumerate(zip(items, ids, strict=True), start=1):
        drafts.append(_draft(item, message_id, batch))
        if n % RENDER_SLICE == 0:
            # The send loop shares this event loop: let its lanes take their turn (their SMTP connections and
            # the relay would otherwise wait for a whole batch to be rendered).
            await asyncio.sleep(0)
    inserted = await insert_messages(session, [draft.row for draft in drafts])
    for item, draft in zip(items, drafts, strict=True):
        if draft.row["id"] not in inserted:
            pass  # queued by an earlier run of this step: nothing more to send
        elif draft.failure is not None:
            log.warning(  # without the contact's data or the template text
                "sequence %d step %s: %s failed for enrollment %d",
                item.sequence.id,
                item.step.key,
                draft.failed,
                item.enrollment.id,
            )
            await enrollments.stop(
                session, item.enrollment, "template_error", draft.failure, batch.now, sequence=item.sequence
            )
            batch.report.stopped += 1
            continue
        else:
            batch.report.queued += 1
        _advance(item.enrollment, item.sequence, item.spec, item.contact, item.identities, batch)


@dataclass
class _Draft:
    """A step's message row, rendered (or cancelled, with why, when its email could not be made)."""

    row: dict[str, Any]
    failure: str | None = None
    """The enrollment's ``stop_detail``."""
    failed: str = ""
    """What failed, for the log: ``template``, or building the email (with the exception's class)."""


def _draft(item: _StepToQueue, message_id: int, batch: _Batch) -> _Draft:
    """The step's email for this contact as a complete row with id ``message_id``.

    Anything that fails for this one email cancels it and stops its enrollment, never the batch: a batch that
    raises rolls back and is claimed again, oldest due first, so one contact's email failing every time would keep
    every sequence from sending.
    """
    settings, step = batch.settings, item.step
    variant = variant_of(item.enrollment, step)
    sender = batch.sender(item.sequence, item.spec)
    tracking = tracking_of(item.spec, settings)
    envelope = Envelope(
        recipient=item.email,
        kind="sequence",
        dedupe_key=dedupe_key(item.enrollment, step),
        contact_id=item.contact.id,
        sender=sender.from_header,
        reply_to=item.spec.sender.reply_to,
        marketing=item.spec.marketing,
        tracking=bool(tracking),
        sequence_id=item.sequence.id,
        enrollment_id=item.enrollment.id,
        step_key=step.key,
        variant=variant.name if variant is not None else None,
    )
    # The recipient is the contact's stored email identity.
    row = partial(message_row, envelope, mail_from=settings.mail_from, now=batch.now, message_id=message_id)
    try:
        return _rendered(item, message_id, batch, row, variant, sender, tracking)
    except Exception as exc:  # a bug, or input nothing foresaw, while the email was put together
        detail = f"the email could not be built: {type(exc).__name__}: {exc}"
        return _cancelled(row, "email could not be built", detail, failed=f"building the email ({type(exc).__name__})")


def _rendered(
    item: _StepToQueue,
    message_id: int,
    batch: _Batch,
    row: partial[dict[str, Any]],
    variant: Variant | None,
    sender: SequenceSender,
    tracking: Tracking,
) -> _Draft:
    """The step's email rendered for this contact, with its tracking (``_draft``)."""
    contact = item.contact
    owner = batch.owners.get(contact.owner_rep_id) if contact.owner_rep_id is not None else None
    unsubscribe_url = batch.links.unsubscribe_url(message_id, item.email)
    context = email_context(contact, item.identities, owner, sender, batch.settings, unsubscribe_url=unsubscribe_url)
    try:
        rendered = batch.library.render_step(item.step, variant, context)
    except Exception as exc:  # a sandboxed template on contact data can raise anything
        return _cancelled(row, "template error", str(exc), failed="template")
    bodies = final_bodies(message_id, item.email, tracking, rendered.html, rendered.text, batch.links)
    return _Draft(row(subject=rendered.subject, bodies=bodies, recipient_normalized=True))


def _cancelled(row: partial[dict[str, Any]], last_error: str, detail: str, *, failed: str) -> _Draft:
    """The row of an email that could not be made, kept (cancelled) so that its step is not queued again."""
    cancelled = row(recipient_normalized=True) | {"status": "cancelled", "last_error": last_error}
    return _Draft(cancelled | {"next_attempt_at": None}, failure=detail[:500], failed=failed)


async def _record_skip(
    session: AsyncSession,
    enrollment: Enrollment,
    sequence: Sequence,
    step: Step,
    now: datetime,
    *,
    reason: str | None = None,
) -> None:
    """A ``sequence_step_skipped`` entry; ``reason`` when it is not the step's ``when`` (``no_consent``)."""
    data: dict[str, Any] = {
        "sequence_id": sequence.id,
        "name": sequence.name,
        "enrollment_id": enrollment.id,
        "step": step.key,
    }
    if reason is not None:
        data["reason"] = reason
    await timeline.append(
        session,
        contact_id=enrollment.contact_id,
        kind=enrollments.STEP_SKIPPED,
        source=enrollments.SOURCE,
        occurred_at=now,
        data=data,
    )


def _advance(
    enrollment: Enrollment,
    sequence: Sequence,
    spec: SequenceSpec,
    contact: Contact,
    identities: Seq[tuple[str, str]],
    batch: _Batch,
) -> None:
    """Move to the next step (due after its delay) or complete the enrollment."""
    now = batch.now
    enrollment.step_index = min(enrollment.step_index + 1, len(spec.steps))
    enrollment.last_step_at, enrollment.wait_reason = now, None
    if enrollment.step_index >= len(spec.steps):
        batch.entries.append(enrollments.complete(enrollment, sequence, now))
        batch.report.completed += 1
        return
    following = spec.steps[enrollment.step_index]
    zone = _zones(contact, identities, batch)[0]
    start = enrollment.enrolled_at if following.delay.after == "enrollment" else now
    enrollment.next_run_at = due_after(start, following.delay, zone)
