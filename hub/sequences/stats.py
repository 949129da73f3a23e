"""A sequence's results, counted from the messages, their events, the enrollments and the replies logged.

Everything is counted in distinct messages, not events: three opens of one email are one email opened.
Opens and clicks are split into people's and machines' (Apple's prefetch, link scanners); a message both
a scanner and a person clicked counts once on each side. A reply belongs to the contact's last sequence
email sent before it, so it counts for that step and variant (and for no sequence if that email was
from another one).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email.models import EmailEvent, EmailMessage
from hub.sequences.enrollment import spec_of
from hub.sequences.models import Enrollment, Sequence
from hub.timeline.models import TimelineEntry

COUNTS = (
    "queued",
    "sent",
    "failed",
    "delivered",
    "opened_human",
    "opened_machine",
    "clicked_human",
    "clicked_machine",
    "replied",
    "bounced",
    "unsubscribed",
    "complained",
)
RATED = COUNTS[3:]
"""Counts also given as a share of ``sent``."""
_EVENT_COUNTS = {"unsubscribed": "unsubscribed", "complained": "complained", "bounced": "bounced"}


@dataclass
class StepStats:
    """One step (and variant) of a sequence."""

    step: str
    variant: str | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def rates(self) -> dict[str, float | None]:
        """Each rated count per message sent (None before anything was sent)."""
        sent = self.counts["sent"]
        return {name: (round(self.counts[name] / sent, 4) if sent else None) for name in RATED}


@dataclass
class SequenceStats:
    """Enrollments by status and reason, and results per step and variant."""

    sequence_id: int
    enrolled: int
    active: int
    completed: int
    stopped: dict[str, int]
    steps: list[StepStats]


async def sequence_stats(session: AsyncSession, sequence: Sequence) -> SequenceStats:
    """Compute the stats of one sequence now."""
    enrolled, active, completed, stopped = await _enrollments(session, sequence.id)
    steps: dict[tuple[str, str | None], StepStats] = {}

    def at(step: str | None, variant: str | None) -> StepStats:
        key = (step or "?", variant)
        if key not in steps:
            steps[key] = StepStats(key[0], variant)
        return steps[key]

    for step, variant, counts in await _message_counts(session, sequence.id):
        at(step, variant).counts.update(counts)
    for step, variant, name, number in await _event_counts(session, sequence.id):
        at(step, variant).counts[name] += number
    for (step, variant), number in (await _replies(session, sequence.id)).items():
        at(step, variant).counts["replied"] += number
    order = _step_order(sequence)
    ordered = sorted(steps.values(), key=lambda s: (order.get(s.step, len(order)), s.step, s.variant or ""))
    return SequenceStats(sequence.id, enrolled, active, completed, stopped, ordered)


def _step_order(sequence: Sequence) -> dict[str, int]:
    try:
        return {step.key or "": index for index, step in enumerate(spec_of(sequence).steps)}
    except ValueError:
        return {}


async def _enrollments(session: AsyncSession, sequence_id: int) -> tuple[int, int, int, dict[str, int]]:
    rows = await session.execute(
        select(Enrollment.status, Enrollment.stop_reason, func.count())
        .where(Enrollment.sequence_id == sequence_id)
        .group_by(Enrollment.status, Enrollment.stop_reason)
    )
    enrolled = active = completed = 0
    stopped: dict[str, int] = {}
    for status, reason, number in rows:
        enrolled += number
        if status == "active":
            active += number
        elif status == "completed":
            completed += number
        elif status == "stopped":
            stopped[reason or "unknown"] = stopped.get(reason or "unknown", 0) + number
    return enrolled, active, completed, stopped


async def _message_counts(
    session: AsyncSession, sequence_id: int
) -> list[tuple[str | None, str | None, dict[str, int]]]:
    def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    rows = await session.execute(
        select(
            EmailMessage.step_key,
            EmailMessage.variant,
            func.count(),
            count_if(EmailMessage.sent_at.is_not(None)),
            count_if(EmailMessage.status == "failed"),
            count_if(EmailMessage.delivered_at.is_not(None) | (EmailMessage.status == "delivered")),
        )
        .where(EmailMessage.sequence_id == sequence_id, EmailMessage.kind == "sequence")
        .group_by(EmailMessage.step_key, EmailMessage.variant)
    )
    found: list[tuple[str | None, str | None, dict[str, int]]] = []
    row: Any
    for row in rows:
        step, variant, n, s, f, d = row
        found.append(
            (step, variant, {"queued": int(n), "sent": int(s or 0), "failed": int(f or 0), "delivered": int(d or 0)})
        )
    return found


async def _event_counts(session: AsyncSession, sequence_id: int) -> list[tuple[str | None, str | None, str, int]]:
    """Distinct messages per step, variant and kind of event (opens and clicks split by who caused them)."""
    label = case(
        ((EmailEvent.kind == "opened") & EmailEvent.machine.is_(True), "opened_machine"),
        ((EmailEvent.kind == "opened") & EmailEvent.machine.is_(False), "opened_human"),
        ((EmailEvent.kind == "clicked") & EmailEvent.machine.is_(True), "clicked_machine"),
        ((EmailEvent.kind == "clicked") & EmailEvent.machine.is_(False), "clicked_human"),
        ((EmailEvent.kind == "bounced") & (func.coalesce(EmailEvent.bounce, "") != "soft"), "bounced"),
        (EmailEvent.kind.in_(("unsubscribed", "complained")), EmailEvent.kind),
        else_=None,
    )
    rows = await session.execute(
        select(EmailMessage.step_key, EmailMessage.variant, label, func.count(func.distinct(EmailMessage.id)))
        .join(EmailEvent, EmailEvent.message_id == EmailMessage.id)
        .where(
            EmailMessage.sequence_id == sequence_id,
            EmailEvent.kind.in_(("opened", "clicked", "bounced", "unsubscribed", "complained")),
        )
        .group_by(EmailMessage.step_key, EmailMessage.variant, label)
    )
    found: list[tuple[str | None, str | None, str, int]] = []
    row: Any
    for row in rows:
        step, variant, name, n = row
        if name is not None:
            found.append((step, variant, str(name), int(n)))
    return found


async def _replies(session: AsyncSession, sequence_id: int) -> dict[tuple[str | None, str | None], int]:
    """Replies logged for contacts of this sequence, each given to the contact's last sequence email before it."""
    enrolled = select(Enrollment.contact_id).where(Enrollment.sequence_id == sequence_id).distinct()
    entries = await session.execute(
        select(TimelineEntry.contact_id, TimelineEntry.occurred_at, TimelineEntry.data).where(
            TimelineEntry.kind == "activity", TimelineEntry.contact_id.in_(enrolled)
        )
    )
    replies: dict[int, list[datetime]] = defaultdict(list)
    entry: Any
    for entry in entries:
        contact_id, occurred_at, data = entry
        if isinstance(data, dict) and data.get("type") == "email_reply":
            replies[int(contact_id)].append(occurred_at)
    if not replies:
        return {}
    messages = await session.execute(
        select(
            EmailMessage.id,
            EmailMessage.contact_id,
            EmailMessage.sequence_id,
            EmailMessage.step_key,
            EmailMessage.variant,
            EmailMessage.sent_at,
        )
        .where(
            EmailMessage.contact_id.in_(list(replies)),
            EmailMessage.kind == "sequence",
            EmailMessage.sent_at.is_not(None),
        )
        .order_by(EmailMessage.sent_at)
    )
    by_contact: dict[int, list[tuple[int, int | None, str | None, str | None, datetime]]] = defaultdict(list)
    message: Any
    for message in messages:
        message_id, contact_id, seq_id, step, variant, sent_at = message
        by_contact[int(contact_id)].append((message_id, seq_id, step, variant, sent_at))
    replied: dict[int, tuple[str | None, str | None]] = {}
    for contact_id, times in replies.items():
        for reply_at in times:
            before = [m for m in by_contact.get(contact_id, []) if m[4] <= reply_at]
            if before and before[-1][1] == sequence_id:
                replied[before[-1][0]] = (before[-1][2], before[-1][3])
    counts: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for key in replied.values():
        counts[key] += 1
    return dict(counts)
