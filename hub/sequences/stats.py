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

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email.models import EmailEvent, EmailMessage
from hub.email.rules import HARD_BOUNCE
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

    of_sequence = [EmailMessage.sequence_id == sequence.id]
    by_step = (EmailMessage.step_key, EmailMessage.variant)
    for (step, variant), counts in await message_counts(session, of_sequence, by_step):
        at(step, variant).counts.update(counts)
    for (step, variant), name, number in await event_counts(session, of_sequence, by_step):
        at(step, variant).counts[name] += number
    enrolled_contacts = select(Enrollment.contact_id).where(Enrollment.sequence_id == sequence.id).distinct()
    for message in (await replied_messages(session, enrolled_contacts)).values():
        if message.sequence_id == sequence.id:
            at(message.step_key, message.variant).counts["replied"] += 1
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


async def message_counts(
    session: AsyncSession, where: list[ColumnElement[bool]], keys: tuple[SQLColumnExpression[Any], ...]
) -> list[tuple[tuple[Any, ...], dict[str, int]]]:
    """queued, sent, failed and delivered of the sequence messages matching ``where``, grouped by ``keys``."""

    def flag(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return case((condition, 1), else_=0)

    # Grouped over a subquery, so a key may be an expression with parameters (a report's period).
    inner = (
        select(
            *(key.label(f"key{index}") for index, key in enumerate(keys)),
            flag(EmailMessage.sent_at.is_not(None)).label("sent"),
            flag(EmailMessage.status == "failed").label("failed"),
            flag(EmailMessage.delivered_at.is_not(None) | (EmailMessage.status == "delivered")).label("delivered"),
        )
        .where(EmailMessage.kind == "sequence", *where)
        .subquery()
    )
    key_columns = [inner.c[f"key{index}"] for index in range(len(keys))]
    rows = await session.execute(
        select(
            *key_columns, func.count(), func.sum(inner.c.sent), func.sum(inner.c.failed), func.sum(inner.c.delivered)
        ).group_by(*key_columns)
    )
    found: list[tuple[tuple[Any, ...], dict[str, int]]] = []
    row: Any
    for row in rows:
        *key, n, s, f, d = row
        found.append(
            (tuple(key), {"queued": int(n), "sent": int(s or 0), "failed": int(f or 0), "delivered": int(d or 0)})
        )
    return found


async def event_counts(
    session: AsyncSession, where: list[ColumnElement[bool]], keys: tuple[SQLColumnExpression[Any], ...]
) -> list[tuple[tuple[Any, ...], str, int]]:
    """Distinct messages matching ``where`` per ``keys`` and kind of event (opens, clicks: people or machines)."""
    label = case(
        ((EmailEvent.kind == "opened") & EmailEvent.machine.is_(True), "opened_machine"),
        ((EmailEvent.kind == "opened") & EmailEvent.machine.is_(False), "opened_human"),
        ((EmailEvent.kind == "clicked") & EmailEvent.machine.is_(True), "clicked_machine"),
        ((EmailEvent.kind == "clicked") & EmailEvent.machine.is_(False), "clicked_human"),
        # Hard bounces only, the ones that stop sequences and suppress: a block or a soft bounce is no bad address.
        ((EmailEvent.kind == "bounced") & (EmailEvent.bounce == HARD_BOUNCE), "bounced"),
        (EmailEvent.kind.in_(("unsubscribed", "complained")), EmailEvent.kind),
        else_=None,
    )
    inner = (
        select(
            *(key.label(f"key{index}") for index, key in enumerate(keys)),
            label.label("name"),
            EmailMessage.id.label("message_id"),
        )
        .join(EmailEvent, EmailEvent.message_id == EmailMessage.id)
        .where(
            *where,
            EmailEvent.kind.in_(("opened", "clicked", "bounced", "unsubscribed", "complained")),
        )
        .subquery()
    )
    key_columns = [inner.c[f"key{index}"] for index in range(len(keys))]
    rows = await session.execute(
        select(*key_columns, inner.c.name, func.count(func.distinct(inner.c.message_id))).group_by(
            *key_columns, inner.c.name
        )
    )
    found: list[tuple[tuple[Any, ...], str, int]] = []
    row: Any
    for row in rows:
        *key, name, n = row
        if name is not None:
            found.append((tuple(key), str(name), int(n)))
    return found


@dataclass(frozen=True)
class RepliedMessage:
    """A sequence email that got a reply: the contact's last sequence email sent before the reply."""

    sequence_id: int | None
    step_key: str | None
    variant: str | None
    sent_at: datetime


async def replied_messages(
    session: AsyncSession, contacts: Select[Any], since: datetime | None = None
) -> dict[int, RepliedMessage]:
    """Messages replied to by ``contacts`` (a select of contact ids), each reply given to the contact's last
    sequence email sent before it; ``since``: only replies from then on."""
    where = [TimelineEntry.kind == "activity", TimelineEntry.contact_id.in_(contacts)]
    if since is not None:
        where.append(TimelineEntry.occurred_at >= since)
    entries = await session.execute(
        select(TimelineEntry.contact_id, TimelineEntry.occurred_at, TimelineEntry.data).where(*where)
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
    by_contact: dict[int, list[tuple[int, RepliedMessage]]] = defaultdict(list)
    message: Any
    for message in messages:
        message_id, contact_id, seq_id, step, variant, sent_at = message
        by_contact[int(contact_id)].append((int(message_id), RepliedMessage(seq_id, step, variant, sent_at)))
    replied: dict[int, RepliedMessage] = {}
    for contact_id, times in replies.items():
        for reply_at in times:
            before = [m for m in by_contact.get(contact_id, []) if m[1].sent_at <= reply_at]
            if before:
                replied[before[-1][0]] = before[-1][1]
    return replied
