"""A resumed sequence's held emails queued again: each in its contact's send window and frequency cap, as the step
runner would have timed it, and the steps after them counted from their release."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.db import lock_keys
from hub.email.models import EmailMessage
from hub.mail.outbox import release_sequence_mail
from hub.sequences.engine import EVERY_CAP_KEY, _recent_marketing
from hub.sequences.enrollment import WentLater, count_next_steps_from, spec_of, zones_of_contacts
from hub.sequences.models import Sequence
from hub.sequences.schemas import SequenceSpec
from hub.sequences.windows import next_send_time

_MESSAGES = cast(Table, EmailMessage.__table__)
_LOCK_EVERY_CAP = text("SELECT pg_advisory_xact_lock(:key)")
_LOCK_EVERY_CAP_SHARED = text("SELECT pg_advisory_xact_lock_shared(:key)")
_UTC = (ZoneInfo("UTC"),)

CAP_LOCKS_AT_MOST = 1000
"""A resume takes the frequency-cap locks of its held marketing emails' contacts one by one up to this many. Each
lock is an entry of PostgreSQL's shared lock table, which holds some thousands for every session together
(``max_locks_per_transaction`` times ``max_connections``): a campaign's backlog of tens of thousands would fail the
resume, and other transactions with it. Beyond it, the resume takes the one lock every step runner batch and every
smaller resume take shared (``engine.EVERY_CAP_KEY``), exclusively: those running then commit first, and new ones
wait for it."""


async def release_held_mail(session: AsyncSession, sequence: Sequence, now: datetime, settings: Settings) -> None:
    """Queue the held messages again, each due when its contact's send window is next open (at once if it is open,
    never before a retry's own time) and, for a marketing email, when the contact's frequency cap frees, as the
    step runner would have timed it; the step after a released one counts its delay from the release, so the two
    do not go out together after a long pause."""
    try:
        spec: SequenceSpec | None = spec_of(sequence)
    except ValidationError:
        spec = None
    if spec is None:
        await release_sequence_mail(session, sequence.id, now)
        return
    m = EmailMessage
    held = (
        await session.execute(
            select(
                m.id, m.contact_id, m.next_attempt_at, m.enrollment_id, m.step_key, m.marketing, m.created_at, m.sent_at
            )
            .where(m.sequence_id == sequence.id, m.status == "held")
            .order_by(m.id)
        )
    ).all()
    contact_ids = {row.contact_id for row in held if row.contact_id is not None}
    zones = await zones_of_contacts(session, contact_ids, settings.default_time_zone)
    counted = [
        (row.contact_id, max(t for t in (row.created_at, row.next_attempt_at, row.sent_at) if t is not None))
        for row in held
        if row.marketing and row.contact_id is not None
    ]
    caps = await _HeldCaps.load(session, settings, counted, now)
    timed: dict[tuple[tuple[ZoneInfo, ...], datetime], datetime] = {}
    due: dict[int, datetime] = {}
    released: list[WentLater] = []
    for message_id, contact_id, retry_at, enrollment_id, step_key, marketing, _created, _sent in held:
        start = max(now, retry_at) if retry_at is not None else now
        key = (zones.get(contact_id, ()) if contact_id is not None else (), start)
        if key not in timed:
            timed[key] = next_send_time(start, spec.window, key[0])
        at = timed[key]
        if caps is not None and marketing and contact_id is not None:
            frees = caps.frees_at(contact_id, at)
            at = next_send_time(frees, spec.window, key[0]) if frees is not None else at
            caps.count(contact_id, at)
        due[message_id] = at
        if enrollment_id is not None:
            released.append(WentLater(spec, enrollment_id, step_key, at, (key[0] or _UTC)[0]))
    await _release_each(session, due)
    # The step after a released one counts its delay from the release (after: previous_step).
    await count_next_steps_from(session, released)


@dataclass
class _HeldCaps:
    """The frequency cap of the contacts of a resumed sequence's held marketing emails, as the step runner counts
    it (``hub.sequences.engine``), without those emails: they are being timed again."""

    cap: int
    window: timedelta
    times: dict[int, list[datetime]]
    """Per contact, when each counted email counts from, in order."""

    @classmethod
    async def load(
        cls, session: AsyncSession, settings: Settings, held: Seq[tuple[int, datetime]], now: datetime
    ) -> _HeldCaps | None:
        """The counted emails of the contacts of ``held`` (each held marketing email's contact and when the step
        runner counts it from), their locks taken first; None when there is no cap to keep."""
        contact_ids = sorted({contact_id for contact_id, _ in held})
        if not settings.frequency_cap or not contact_ids:
            return None
        # The step runner's locks: a batch queuing for these contacts commits first and is counted, and one
        # starting meanwhile leaves them to its next round, when it sees these emails released.
        if session.get_bind().dialect.name == "postgresql":
            # Shared by every step runner batch and every small resume, exclusive for a large one: a large resume
            # and a small one with contacts in common do not time the same contact's emails at once.
            every = _LOCK_EVERY_CAP_SHARED if len(contact_ids) <= CAP_LOCKS_AT_MOST else _LOCK_EVERY_CAP
            await session.execute(every, {"key": EVERY_CAP_KEY})
        if len(contact_ids) <= CAP_LOCKS_AT_MOST:
            await lock_keys(session, [f"frequency-cap:{contact_id}" for contact_id in contact_ids])
        times = await _recent_marketing(session, contact_ids, settings, now)
        since = now - timedelta(hours=settings.frequency_cap_hours)
        for contact_id, counted in held:
            if counted > since and counted in times[contact_id]:
                times[contact_id].remove(counted)
        return cls(settings.frequency_cap, timedelta(hours=settings.frequency_cap_hours), times)

    def frees_at(self, contact_id: int, at: datetime) -> datetime | None:
        """When the contact may get another marketing email, at ``at`` or later; None if at ``at``. As in the step
        runner, every email counted from after ``at - window`` counts, later ones too (one already timed for
        tomorrow); a later time only lets emails out of the count, so the time found needs no second look."""
        times = self.times.get(contact_id, [])
        counting = times[bisect_right(times, at - self.window) :]
        if len(counting) < self.cap:
            return None
        return counting[len(counting) - self.cap] + self.window

    def count(self, contact_id: int, at: datetime) -> None:
        """An email released for ``at`` counts from then for the contact's next one."""
        insort(self.times.setdefault(contact_id, []), at)


async def _release_each(session: AsyncSession, due: dict[int, datetime]) -> None:
    """Queue the held messages again, each at its own time (rows no longer held are left alone): one statement
    run for many rows, as capped contacts' times differ from one email to the next."""
    if not due:
        return
    c = _MESSAGES.c
    statement = (
        update(_MESSAGES)
        .where(c.id == bindparam("held_id"), c.status == "held")
        .values(status="queued", next_attempt_at=bindparam("due_at"))
    )
    ids = sorted(due)
    for start in range(0, len(ids), 5000):
        await session.execute(statement, [{"held_id": i, "due_at": due[i]} for i in ids[start : start + 5000]])
