"""Running sequences: claim the enrollments whose next step is due and queue each step's email.

One call handles one batch in the caller's transaction: the claim locks the due rows (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, a simple single-table query), and each enrollment either waits (paused
sequence, quiet hours, frequency cap), stops (suppressed, merged, closed), skips its step (its ``when``
does not hold) or queues the step's message through the outbox and moves on. The message's dedupe key
``seq:<enrollment>:<step>`` makes a step queued twice impossible, whatever the workers do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.contacts import repository as contacts_repo
from hub.contacts.facts import lead_snapshot
from hub.contacts.models import Contact
from hub.db import advisory_key
from hub.email import repository as email_repo
from hub.email.models import EmailEvent, EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.policy.conditions import matches
from hub.policy.facts import lead_facts
from hub.policy.schemas import RulesFile
from hub.reps.models import Rep, Team
from hub.sequences import enrollment as enrollments
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import SequenceSpec, Step, Variant
from hub.sequences.templates import TemplateLibrary
from hub.sequences.variables import email_context, sender_of
from hub.sequences.windows import contact_zones, due_after, next_send_time
from hub.timeline import service as timeline

log = logging.getLogger(__name__)

PAUSED_RECHECK = timedelta(hours=1)
"""A paused sequence's enrollments look again this often (resuming makes them due at once anyway)."""
BUSY_RETRY = timedelta(minutes=1)
"""An enrollment whose contact another worker is capping right now tries again this much later."""
CAPPED_STATUSES = ("queued", "held", "sending", "sent", "delivered")


@dataclass
class StepReport:
    """What one batch did."""

    claimed: int = 0
    queued: int = 0
    skipped: int = 0
    waiting: int = 0
    completed: int = 0
    stopped: int = 0
    sequence_ids: set[int] = field(default_factory=set)
    """Sequences that queued messages in this batch (the send loop checks their breakers)."""


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
    for enrollment in claimed:
        await _run_one(session, enrollment, batch)
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
    sequence_rows = await session.scalars(select(Sequence).where(Sequence.id.in_({e.sequence_id for e in claimed})))
    sequences = {s.id: (s, _spec_or_none(s)) for s in sequence_rows}
    contact_ids = sorted({e.contact_id for e in claimed})
    contacts = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
    identities = await contacts_repo.identities_of_many(session, contact_ids)
    emails = [_email_of(identities.get(c, [])) for c in contact_ids]
    suppressed = set(await email_repo.suppressions_for(session, [e for e in emails if e]))
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
    )


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
    deadlock, and an enrollment can simply look again a minute later.
    """
    if session.get_bind().dialect.name != "postgresql" or not contact_ids:
        return set()
    busy = set()
    for contact_id in contact_ids:
        got = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": advisory_key(f"frequency-cap:{contact_id}")}
        )
        if not got:
            busy.add(contact_id)
    return busy


async def _recent_marketing(
    session: AsyncSession, contact_ids: list[int], settings: Settings, now: datetime
) -> dict[int, list[datetime]]:
    """When each contact's marketing messages inside the cap window were queued, oldest first."""
    if not settings.frequency_cap or not contact_ids:
        return {}
    since = now - timedelta(hours=settings.frequency_cap_hours)
    found: dict[int, list[datetime]] = {c: [] for c in contact_ids}
    for start in range(0, len(contact_ids), 500):
        rows = await session.execute(
            select(EmailMessage.contact_id, EmailMessage.created_at)
            .where(
                EmailMessage.contact_id.in_(contact_ids[start : start + 500]),
                EmailMessage.marketing.is_(True),
                EmailMessage.status.in_(CAPPED_STATUSES),
                EmailMessage.created_at > since,
            )
            .order_by(EmailMessage.created_at)
        )
        for contact_id, created_at in rows:
            if contact_id is not None:
                found[contact_id].append(created_at)
    return found


async def _run_one(session: AsyncSession, enrollment: Enrollment, batch: _Batch) -> None:
    """Wait, stop, skip or queue: one enrollment's due step."""
    now, report = batch.now, batch.report
    sequence, spec = batch.sequences.get(enrollment.sequence_id, (None, None))
    if sequence is None or spec is None or sequence.status != "active":
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
        await _advance(session, enrollment, sequence, spec, contact, identities, batch)
        return
    step = spec.steps[enrollment.step_index]
    if step.when is not None and not await _condition_holds(session, enrollment, spec, step, contact):
        await _record_skip(session, enrollment, sequence, step, now)
        report.skipped += 1
        await _advance(session, enrollment, sequence, spec, contact, identities, batch)
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
    queued = await _queue_step(session, enrollment, sequence, spec, step, contact, identities, email, batch)
    if not queued:
        report.stopped += 1
        return
    await _advance(session, enrollment, sequence, spec, contact, identities, batch)


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
    stage = batch.policy.pipeline.stage(contact.stage)
    # A sequence started by reaching a won stage (onboarding) is not stopped by being in it.
    if stage is not None and stage.outcome is not None and enrollment.trigger != f"stage:{contact.stage}":
        return stage.outcome, f"stage {contact.stage}"
    if contact.stage in spec.exit_stages:
        return "exit_stage", f"stage {contact.stage}"
    return None


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


async def step_facts(session: AsyncSession, enrollment: Enrollment, spec: SequenceSpec) -> dict[str, bool]:
    """``previous_sent/delivered/opened/clicked`` about the email of the step before (opens and clicks
    by people only: Apple's prefetch and link scanners do not count); all false for the first step."""
    facts = dict.fromkeys(("previous_sent", "previous_delivered", "previous_opened", "previous_clicked"), False)
    if enrollment.step_index == 0:
        return facts
    previous = spec.steps[enrollment.step_index - 1]
    message = await session.scalar(
        select(EmailMessage).where(EmailMessage.dedupe_key == dedupe_key(enrollment, previous))
    )
    if message is None:
        return facts
    facts["previous_sent"] = message.sent_at is not None
    facts["previous_delivered"] = message.delivered_at is not None or message.status == "delivered"
    human = await session.scalars(
        select(EmailEvent.kind)
        .where(
            EmailEvent.message_id == message.id,
            EmailEvent.kind.in_(("opened", "clicked")),
            EmailEvent.machine.is_(False),
        )
        .distinct()
    )
    kinds = set(human)
    facts["previous_opened"] = "opened" in kinds or "clicked" in kinds  # a person's click implies an open
    facts["previous_clicked"] = "clicked" in kinds
    return facts


def dedupe_key(enrollment: Enrollment, step: Step) -> str:
    """The outbox key of one step of one enrollment."""
    return f"seq:{enrollment.id}:{step.key}"


def draw_variant(enrollment_id: int, step: Step) -> Variant | None:
    """The step's A/B variant for this enrollment: weighted, and the same every time it is drawn."""
    if not step.variants:
        return None
    digest = hashlib.sha256(f"{enrollment_id}:{step.key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % 100
    for variant in step.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return step.variants[-1]


def _variant(enrollment: Enrollment, step: Step) -> Variant | None:
    """The variant drawn before for this step (kept on the enrollment), else a new draw."""
    assert step.key is not None
    drawn = (enrollment.variants or {}).get(step.key)
    if drawn is not None:
        return next((v for v in step.variants if v.name == drawn), None)
    variant = draw_variant(enrollment.id, step)
    if variant is not None:
        enrollment.variants = {**(enrollment.variants or {}), step.key: variant.name}
    return variant


async def _queue_step(
    session: AsyncSession,
    enrollment: Enrollment,
    sequence: Sequence,
    spec: SequenceSpec,
    step: Step,
    contact: Contact,
    identities: Seq[tuple[str, str]],
    email: str,
    batch: _Batch,
) -> bool:
    """Queue the step's email; False when its template failed (the enrollment is then stopped)."""
    settings = batch.settings
    variant = _variant(enrollment, step)
    sender = sender_of(spec, settings.mail_from)
    envelope = Envelope(
        recipient=email,
        kind="sequence",
        dedupe_key=dedupe_key(enrollment, step),
        contact_id=contact.id,
        sender=sender.from_header,
        reply_to=spec.sender.reply_to,
        marketing=spec.marketing,
        tracking=spec.tracking,
        sequence_id=sequence.id,
        enrollment_id=enrollment.id,
        step_key=step.key,
        variant=variant.name if variant is not None else None,
    )
    message = await reserve_message(session, envelope, mail_from=settings.mail_from)
    if message is None:
        return True  # queued by an earlier run of this step: nothing more to send
    owner = batch.owners.get(contact.owner_rep_id) if contact.owner_rep_id is not None else None
    unsubscribe_url = batch.links.unsubscribe_url(message.id, message.recipient)
    context = email_context(contact, identities, owner, sender, settings, unsubscribe_url=unsubscribe_url)
    try:
        rendered = batch.library.render_step(step, variant, context)
    except Exception as exc:  # a sandboxed template on contact data can raise anything
        # Logged without the contact's data or the template text.
        log.warning("sequence %d step %s: template failed for enrollment %d", sequence.id, step.key, enrollment.id)
        message.status, message.last_error = "cancelled", "template error"
        await enrollments.stop(session, enrollment, "template_error", str(exc)[:500], batch.now, sequence=sequence)
        return False
    fill_message(message, subject=rendered.subject, html=rendered.html, text=rendered.text, links=batch.links)
    if spec.marketing:
        batch.capped.setdefault(contact.id, []).append(batch.now)
    batch.report.queued += 1
    batch.report.sequence_ids.add(sequence.id)
    return True


async def _record_skip(
    session: AsyncSession, enrollment: Enrollment, sequence: Sequence, step: Step, now: datetime
) -> None:
    await timeline.append(
        session,
        contact_id=enrollment.contact_id,
        kind=enrollments.STEP_SKIPPED,
        source=enrollments.SOURCE,
        occurred_at=now,
        data={"sequence_id": sequence.id, "name": sequence.name, "enrollment_id": enrollment.id, "step": step.key},
    )


async def _advance(
    session: AsyncSession,
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
        await enrollments.complete(session, enrollment, sequence, now)
        batch.report.completed += 1
        return
    following = spec.steps[enrollment.step_index]
    zone = _zones(contact, identities, batch)[0]
    start = enrollment.enrolled_at if following.delay.after == "enrollment" else now
    enrollment.next_run_at = due_after(start, following.delay, zone)
