"""Queries on calls and recordings."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact
from hub.db import UtcDateTime

RepReach = tuple[Collection[int], bool] | None
"""Whose calls a report counts: the reps' (and, with True, calls no rep took); None: every call."""


_BY_SID = select(Call).where(Call.call_sid == bindparam("call_sid")).execution_options(populate_existing=True)
"""Built once: read for every call callback (see _LEGS)."""


async def by_sid(session: AsyncSession, call_sid: str) -> Call | None:
    """The call leg with this CallSid."""
    return (await session.scalars(_BY_SID, {"call_sid": call_sid})).one_or_none()


async def get(session: AsyncSession, call_id: int) -> Call | None:
    """The call with this id."""
    return await session.get(Call, call_id)


async def insert(session: AsyncSession, call: Call) -> Call:
    """Add a call and flush for its id."""
    session.add(call)
    await session.flush()
    return call


# Built once, the values given at execution: these run for most call callbacks, and building a statement costs
# about as much Python as sending it.
_LEGS = select(Call).where(Call.parent_call_sid == bindparam("call_sid")).order_by(Call.id)
_RECORDINGS = (
    select(CallRecording)
    .where(CallRecording.call_id.in_(bindparam("call_ids", expanding=True)))
    .order_by(CallRecording.id)
)


_FAMILY = (
    select(Call, CallRecording)
    .outerjoin(CallRecording, CallRecording.call_id == Call.id)
    .where(
        or_(
            Call.call_sid == bindparam("call_sid"),
            Call.call_sid == bindparam("root_sid"),
            Call.parent_call_sid == bindparam("root_sid"),
        )
    )
    .order_by(Call.id, CallRecording.id)
    .execution_options(populate_existing=True)
)


async def with_family(session: AsyncSession, call_sid: str, root_sid: str) -> tuple[list[Call], list[CallRecording]]:
    """The leg with this CallSid, the top-level call ``root_sid`` and that call's legs, oldest first, and their
    recordings, oldest first: what a status callback reads, in one statement rather than three (the leg, its
    family, their recordings)."""
    rows = (await session.execute(_FAMILY, {"call_sid": call_sid, "root_sid": root_sid})).all()
    calls = {call.id: call for call, _ in rows}
    recordings = sorted((recording for _, recording in rows if recording is not None), key=lambda r: r.id)
    return list(calls.values()), recordings


async def legs_of(session: AsyncSession, call_sid: str) -> list[Call]:
    """Child legs a <Dial> created for a call."""
    return list((await session.scalars(_LEGS, {"call_sid": call_sid})).all())


async def recording_by_sid(session: AsyncSession, recording_sid: str) -> CallRecording | None:
    """The recording with this RecordingSid."""
    stmt = select(CallRecording).where(CallRecording.recording_sid == recording_sid)
    return (await session.scalars(stmt)).one_or_none()


async def recordings_of(session: AsyncSession, call_ids: list[int]) -> list[CallRecording]:
    """Recordings of these calls, oldest first."""
    if not call_ids:
        return []
    return list((await session.scalars(_RECORDINGS, {"call_ids": call_ids})).all())


async def insert_recording(session: AsyncSession, recording: CallRecording) -> CallRecording:
    """Add a recording and flush for its id."""
    session.add(recording)
    await session.flush()
    return recording


async def list_calls(
    session: AsyncSession,
    *,
    limit: int,
    filters: dict[str, Any],
    visible_to_reps: Collection[int] | None,
    before: tuple[datetime, int] | None,
) -> list[Call]:
    """Top-level calls (not <Dial> child legs), newest first, keyset-paginated on (started_at, id)."""
    stmt: Any = select(Call).where(Call.parent_call_sid.is_(None))
    for column in ("contact_id", "rep_id", "flow", "status", "outcome"):
        if filters.get(column) is not None:
            stmt = stmt.where(getattr(Call, column) == filters[column])
    if filters.get("since") is not None:
        stmt = stmt.where(Call.started_at >= filters["since"])
    if filters.get("until") is not None:
        stmt = stmt.where(Call.started_at < filters["until"])
    if visible_to_reps is not None:  # the reps' own calls, and calls with their leads
        reps = list(visible_to_reps) or [0]
        owned = select(Contact.id).where(Contact.owner_rep_id.in_(reps))
        stmt = stmt.where(or_(Call.rep_id.in_(reps), Call.contact_id.in_(owned)))
    if before is not None:
        moment, call_id = before
        stmt = stmt.where(tuple_(Call.started_at, Call.id) < tuple_(literal(moment, UtcDateTime()), literal(call_id)))
    stmt = stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


REPORT_MISSED_OUTCOMES = ("missed", "voicemail")


async def report_span(
    session: AsyncSession, since: datetime, until: datetime, reach: RepReach = None
) -> tuple[Any, Any]:
    """The first and last start of top-level calls in [since, until) (both None when there is none)."""
    stmt = select(func.min(Call.started_at), func.max(Call.started_at)).where(_reported(since, until, reach))
    first, last = (await session.execute(stmt)).one()
    return first, last


async def report_totals(
    session: AsyncSession, since: datetime, until: datetime, key: SQLColumnExpression[Any], reach: RepReach = None
) -> list[Any]:
    """Per ``key`` value: calls, answered, missed, inbound, outbound, talk seconds, answered calls with a talk time."""
    answered = Call.outcome == "answered"
    timed = answered & Call.talk_seconds.is_not(None)
    # Grouping over a subquery lets ``key`` carry bound parameters (a CASE over period starts): PostgreSQL would
    # not match the select list's parameters with the GROUP BY's.
    inner = (
        select(
            key.label("key"),
            _flag(answered).label("answered"),
            _flag(Call.outcome.in_(REPORT_MISSED_OUTCOMES)).label("missed"),
            _flag(Call.flow == "inbound").label("inbound"),
            _flag(Call.flow == "outbound").label("outbound"),
            case((timed, Call.talk_seconds), else_=0).label("talk"),
            _flag(timed).label("timed"),
        )
        .where(_reported(since, until, reach))
        .subquery()
    )
    sums = [func.sum(inner.c[name]) for name in ("answered", "missed", "inbound", "outbound", "talk", "timed")]
    stmt = select(inner.c.key, func.count(), *sums).group_by(inner.c.key)
    return list((await session.execute(stmt)).all())


def _reported(since: datetime, until: datetime, reach: RepReach) -> ColumnElement[bool]:
    # A <Dial>'s child legs carry the parent's sid: only the top-level call counts.
    reported = and_(Call.parent_call_sid.is_(None), Call.started_at >= since, Call.started_at < until)
    if reach is None:
        return reported
    reps, with_no_rep = reach
    taken_by = Call.rep_id.in_(sorted(reps)) if reps else false()
    return and_(reported, or_(taken_by, Call.rep_id.is_(None)) if with_no_rep else taken_by)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


async def move_contact(session: AsyncSession, from_contact: int, to_contact: int) -> None:
    """Re-point calls of a merged contact to the survivor."""
    await session.execute(update(Call).where(Call.contact_id == from_contact).values(contact_id=to_contact))
