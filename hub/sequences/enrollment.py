"""Enrolling contacts in sequences and stopping them, each recorded on the contact's timeline with its reason.

At most one enrollment of a contact in a sequence is active: the partial unique index decides, so two
triggers firing at once (two workers, two requests) cannot both enroll the contact.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact
from hub.email import repository as email_repo
from hub.email.models import EmailMessage
from hub.mail import outbox
from hub.reps.models import Rep, Team
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import STOP_REASONS, STORED, SequenceSpec
from hub.sequences.windows import contact_zones, due_after
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

log = logging.getLogger(__name__)

ENROLLED = "sequence_enrolled"
STOPPED = "sequence_stopped"
COMPLETED = "sequence_completed"
STEP_SKIPPED = "sequence_step_skipped"
SOURCE = "hub:sequences"
REFUSALS = {
    "already_active": "the contact is already active in this sequence",
    "reenroll_not_allowed": "the contact went through this sequence before and its re-enrollment policy is never",
    "no_email": "the contact has no email address",
    "suppressed": "the contact's email address is on the suppression list",
    "merged": "the contact was merged into another one",
}
"""Why a contact was not enrolled (the key is the API's ``reason``)."""


@dataclass(frozen=True)
class EnrollOutcome:
    """An enrollment made, or why not (a key of REFUSALS)."""

    enrollment: Enrollment | None
    refused: str | None = None


def spec_of(sequence: Sequence) -> SequenceSpec:
    """The sequence's validated definition (cached on the row: parsing it per enrollment would dominate)."""
    cached = sequence.__dict__.get("_hub_spec")
    if cached is None or cached[0] is not sequence.spec:
        cached = (sequence.spec, SequenceSpec.model_validate(sequence.spec, context=STORED))
        sequence.__dict__["_hub_spec"] = cached
    spec: SequenceSpec = cached[1]
    return spec


async def enroll(
    session: AsyncSession,
    sequence: Sequence,
    contact: Contact,
    *,
    trigger: str,
    now: datetime,
    fallback_zone: str = "UTC",
) -> Enrollment | None:
    """Enroll the contact as the sequence's re-enrollment policy allows; None if it may not be (see attempt)."""
    outcome = await attempt_enrollment(
        session, sequence, contact, trigger=trigger, now=now, fallback_zone=fallback_zone
    )
    return outcome.enrollment


async def attempt_enrollment(
    session: AsyncSession,
    sequence: Sequence,
    contact: Contact,
    *,
    trigger: str,
    now: datetime,
    fallback_zone: str = "UTC",
) -> EnrollOutcome:
    """Enroll the contact, or say why not (no email, suppressed, merged, already active, policy)."""
    if contact.merged_into_id is not None:
        return EnrollOutcome(None, "merged")
    identities = await contacts_repo.identities_of(session, contact.id)
    emails = [value for kind, value in identities if kind == "email"]
    if not emails:
        return EnrollOutcome(None, "no_email")
    if emails[0] in await email_repo.suppressions_for(session, emails[:1]):
        return EnrollOutcome(None, "suppressed")
    spec = spec_of(sequence)
    previous = await _enrollments_of(session, sequence.id, contact.id)
    active = next((e for e in previous if e.status == "active"), None)
    if active is not None and spec.reenroll != "always":
        return EnrollOutcome(None, "already_active")
    if previous and spec.reenroll == "never":
        return EnrollOutcome(None, "reenroll_not_allowed")
    if active is not None:
        await stop(session, active, "reenrolled", f"enrolled again ({trigger})", now, sequence=sequence)
    phones = [value for kind, value in identities if kind == "phone"]
    zone = contact_zones(contact.time_zone, phones, await fallback_zone_of(session, contact, fallback_zone))[0]
    values: dict[str, Any] = {
        "sequence_id": sequence.id,
        "contact_id": contact.id,
        "status": "active",
        "step_index": 0,
        "next_run_at": due_after(now, spec.steps[0].delay, zone),
        "trigger": trigger[:200],
        "enrolled_at": now,
        "variants": {},
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # The partial unique index is the referee between concurrent enrollments: the loser inserts nothing.
    stmt = insert(Enrollment).values(**values).on_conflict_do_nothing().returning(Enrollment.id)
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return EnrollOutcome(None, "already_active")
    enrollment = (await session.scalars(select(Enrollment).where(Enrollment.id == new_id))).one()
    await timeline.append(
        session,
        contact_id=contact.id,
        kind=ENROLLED,
        source=SOURCE,
        occurred_at=now,
        data={
            "sequence_id": sequence.id,
            "name": sequence.name,
            "enrollment_id": enrollment.id,
            "trigger": enrollment.trigger,
            "reenrolled": bool(previous),
        },
    )
    return EnrollOutcome(enrollment)


async def _enrollments_of(session: AsyncSession, sequence_id: int, contact_id: int) -> list[Enrollment]:
    stmt = select(Enrollment).where(Enrollment.sequence_id == sequence_id, Enrollment.contact_id == contact_id)
    return list((await session.scalars(stmt)).all())


async def stop(
    session: AsyncSession,
    enrollment: Enrollment,
    reason: str,
    detail: str | None,
    now: datetime,
    *,
    sequence: Sequence | None = None,
) -> None:
    """Stop an enrollment with its reason (one of STOP_REASONS); its message not yet handed over is cancelled.

    The enrollment is active, or completed with its last email still unsent (see ``stop_by_hand``); a
    stopped one is left as it is."""
    if reason not in STOP_REASONS:
        raise ValueError(f"unknown stop reason {reason!r}: add it to STOP_REASONS and docs/SEQUENCES.md")
    if enrollment.status == "stopped":
        return
    sequence = sequence or await session.get(Sequence, enrollment.sequence_id)
    enrollment.status, enrollment.stopped_at = "stopped", now
    enrollment.stop_reason, enrollment.stop_detail = reason[:32], (detail or None) and detail[:500]
    enrollment.next_run_at, enrollment.wait_reason = None, None
    # Written first: on PostgreSQL this waits for a step runner holding the row, so a message it
    # queued meanwhile is committed and visible to the cancel below.
    await session.flush()
    # A reply or a won deal makes the next email wrong, also one a send loop claimed but has not handed over.
    await outbox.cancel_unsent(session, reason, EmailMessage.enrollment_id == enrollment.id)
    data = {
        "sequence_id": enrollment.sequence_id,
        "name": sequence.name if sequence is not None else None,
        "enrollment_id": enrollment.id,
        "reason": reason,
        "detail": detail,
    }
    await timeline.append(
        session,
        contact_id=enrollment.contact_id,
        kind=STOPPED,
        source=SOURCE,
        occurred_at=now,
        data={k: v for k, v in data.items() if v is not None},
    )
    await session.flush()


async def stop_by_hand(session: AsyncSession, enrollment: Enrollment, detail: str, now: datetime) -> bool:
    """Stop an enrollment a manager asked to stop (reason ``manual``): an active one, or a completed one whose
    last email is not yet handed to SMTP (a paused sequence holds it, a retry waits). False when there is
    nothing left to stop: it is stopped already, or every email of it has gone."""
    if enrollment.status == "completed":
        # Cancelled first, by the guarded statement: a send loop handing it over meanwhile either finds it
        # cancelled, or got there first and the stop is refused (the enrollment stays completed).
        if not await outbox.cancel_unsent(session, "manual", EmailMessage.enrollment_id == enrollment.id):
            return False
    elif enrollment.status != "active":
        return False
    await stop(session, enrollment, "manual", detail, now)
    return True


async def active_enrollments(session: AsyncSession, contact_id: int) -> list[Enrollment]:
    """The contact's active enrollments, oldest first."""
    stmt = (
        select(Enrollment)
        .where(Enrollment.contact_id == contact_id, Enrollment.status == "active")
        .order_by(Enrollment.id)
    )
    return list((await session.scalars(stmt)).all())


async def stop_for_contact(
    session: AsyncSession,
    contact_id: int,
    reason: str,
    detail: str | None,
    now: datetime,
    *,
    sequence_ids: Iterable[int] | None = None,
) -> list[Enrollment]:
    """Stop the contact's active enrollments (in ``sequence_ids`` only, if given); the ones stopped."""
    wanted = set(sequence_ids) if sequence_ids is not None else None
    stopped = []
    for enrollment in await active_enrollments(session, contact_id):
        if wanted is None or enrollment.sequence_id in wanted:
            await stop(session, enrollment, reason, detail, now)
            stopped.append(enrollment)
    if stopped:
        log.info("stopped %d enrollments of contact %d: %s", len(stopped), contact_id, reason)
    # A completed enrollment's last email may still wait (a retry's backoff, a paused sequence): the reply or the
    # opt-out makes it as wrong as a running enrollment's next one.
    completed = select(Enrollment.id).where(Enrollment.contact_id == contact_id, Enrollment.status == "completed")
    if wanted is not None:
        completed = completed.where(Enrollment.sequence_id.in_(sorted(wanted)))
    await outbox.cancel_unsent(
        session, reason, EmailMessage.contact_id == contact_id, EmailMessage.enrollment_id.in_(completed)
    )
    return stopped


def complete(enrollment: Enrollment, sequence: Sequence, now: datetime) -> TimelineEntry:
    """The last step is done: the enrollment ends as completed; returns its timeline entry for the caller to
    append (the sequence engine appends a whole batch's at once)."""
    enrollment.status, enrollment.completed_at = "completed", now
    enrollment.next_run_at, enrollment.wait_reason = None, None
    return TimelineEntry(
        contact_id=enrollment.contact_id,
        kind=COMPLETED,
        source=SOURCE,
        occurred_at=now,
        recorded_at=now,
        data={"sequence_id": sequence.id, "name": sequence.name, "enrollment_id": enrollment.id},
    )


async def resume_paused(session: AsyncSession, sequence_id: int, now: datetime) -> int:
    """Make the enrollments that waited for a paused sequence due now (call when the sequence resumes)."""
    result = await session.execute(
        update(Enrollment)
        .where(
            Enrollment.sequence_id == sequence_id,
            Enrollment.status == "active",
            Enrollment.wait_reason == "paused",
        )
        .values(next_run_at=now, wait_reason=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class WentLater:
    """A sequence email that goes later than its enrollment's next step was timed from: released by a resume, put
    off to its send window's next opening, or retried."""

    spec: SequenceSpec
    enrollment_id: int
    step_key: str | None
    at: datetime
    """When the email is now due."""
    zone: ZoneInfo
    """The contact's first zone (``due_after`` counts days on its calendar)."""


_ENROLLMENTS = cast(Table, Enrollment.__table__)
_DUE_AT = bindparam("due_at", type_=_ENROLLMENTS.c.next_run_at.type)
_COUNT_FROM = (
    update(_ENROLLMENTS)
    .where(
        _ENROLLMENTS.c.id == bindparam("enrollment_id"),
        _ENROLLMENTS.c.status == "active",
        _ENROLLMENTS.c.step_index == bindparam("next_index"),
        _ENROLLMENTS.c.next_run_at < _DUE_AT,
    )
    .values(next_run_at=_DUE_AT)
)


async def lock_enrollments(db: AsyncSession | AsyncConnection, enrollment_ids: Iterable[int]) -> None:
    """Lock these enrollments' rows, in id order: before their messages, as a stop takes them (``stop`` writes the
    enrollment, then cancels its messages), for a transaction that writes both the other way round."""
    ids = sorted(set(enrollment_ids))
    if ids:
        await db.execute(select(Enrollment.id).where(Enrollment.id.in_(ids)).order_by(Enrollment.id).with_for_update())


async def count_next_steps_from(db: AsyncSession | AsyncConnection, went: Iterable[WentLater]) -> None:
    """The next step of each enrollment whose email went later is due no earlier than its delay after the email's
    new time (``after: previous_step``; a step timed ``after: enrollment`` keeps its date), as if the email had
    been queued then: the two never go out together. Only an enrollment still waiting for the step after that
    email's is moved (one that stopped or moved on is left alone), and only later. One statement per 5,000."""
    rows: list[dict[str, Any]] = []
    # Each definition's step numbers by key, worked out once; the definition is kept with them, so its id is not
    # reused by another while they are looked up.
    places: dict[int, tuple[SequenceSpec, dict[str | None, int]]] = {}
    for email in went:
        steps = email.spec.steps
        if id(email.spec) not in places:
            places[id(email.spec)] = (email.spec, {step.key: n for n, step in enumerate(steps)})
        index = places[id(email.spec)][1].get(email.step_key)
        if index is None or index + 1 >= len(steps) or steps[index + 1].delay.after != "previous_step":
            continue
        due_at = due_after(email.at, steps[index + 1].delay, email.zone)
        rows.append({"enrollment_id": email.enrollment_id, "next_index": index + 1, "due_at": due_at})
    for start in range(0, len(rows), 5000):
        await db.execute(_COUNT_FROM, rows[start : start + 5000])


async def zones_of_contacts(
    session: AsyncSession, contact_ids: Collection[int], default_zone: str
) -> dict[int, tuple[ZoneInfo, ...]]:
    """Each contact's zones as the step runner reads them: its own, else its phone's, else its owner's team's,
    else ``default_zone``."""
    ids = sorted(set(contact_ids))
    identities = await contacts_repo.identities_of_many(session, ids)
    zones: dict[int, tuple[ZoneInfo, ...]] = {}
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(Contact.id, Contact.time_zone, Team.time_zone)
            .outerjoin(Rep, Rep.id == Contact.owner_rep_id)
            .outerjoin(Team, Team.id == Rep.team_id)
            .where(Contact.id.in_(ids[start : start + 500]))
        )
        for contact_id, own, team in rows:
            phones = [value for kind, value in identities.get(contact_id, []) if kind == "phone"]
            zones[contact_id] = contact_zones(own, phones, team or default_zone)
    return zones


async def fallback_zone_of(session: AsyncSession, contact: Contact, default: str) -> str:
    """The zone of a contact with no zone and no usable phone: its owner's team's, else ``default``."""
    if contact.owner_rep_id is None:
        return default
    zone = await session.scalar(
        select(Team.time_zone).join(Rep, Rep.team_id == Team.id).where(Rep.id == contact.owner_rep_id)
    )
    return zone or default
