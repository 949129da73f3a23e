"""Queries on assignments, deadlines, the routing queue, fair-order state and the stage log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.routing.models import Assignment, Deadline, QueuedLead, RepPerformance, RoutingPool, RoutingTurn, StageChange


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# Built once, the contact given at execution: routing reads these for every lead it looks at.
_OPEN_ASSIGNMENT = select(Assignment).where(
    Assignment.contact_id == bindparam("contact_id"), Assignment.ended_at.is_(None)
)
_LATEST_ASSIGNMENT = (
    select(Assignment)
    .where(Assignment.contact_id == bindparam("contact_id"))
    .order_by(Assignment.assigned_at.desc(), Assignment.id.desc())
    .limit(1)
)


async def open_assignment(session: AsyncSession, contact_id: int) -> Assignment | None:
    """The contact's current assignment, if any."""
    return (await session.scalars(_OPEN_ASSIGNMENT, {"contact_id": contact_id})).one_or_none()


async def latest_assignment(session: AsyncSession, contact_id: int) -> Assignment | None:
    """The contact's most recent assignment, open or ended."""
    return (await session.scalars(_LATEST_ASSIGNMENT, {"contact_id": contact_id})).one_or_none()


async def latest_assignments(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, Assignment]:
    """``latest_assignment`` of many contacts in one read; a contact never assigned is absent."""
    if not contact_ids:
        return {}
    stmt = (
        select(Assignment)
        .where(Assignment.contact_id.in_(contact_ids))
        .order_by(Assignment.contact_id, Assignment.assigned_at.desc(), Assignment.id.desc())
    )
    latest: dict[int, Assignment] = {}
    for assignment in (await session.scalars(stmt)).all():
        latest.setdefault(assignment.contact_id, assignment)
    return latest


async def assignments_of(session: AsyncSession, contact_id: int) -> list[Assignment]:
    """Every assignment of the contact, oldest first."""
    stmt = select(Assignment).where(Assignment.contact_id == contact_id).order_by(Assignment.id)
    return list((await session.scalars(stmt)).all())


async def chain_rep_ids(session: AsyncSession, chain_id: int) -> set[int]:
    """Reps who already held the lead in this run of hand-overs."""
    stmt = select(Assignment.rep_id).where(Assignment.chain_id == chain_id)  # the first one's chain_id is its id
    return set((await session.scalars(stmt)).all())


async def add(session: AsyncSession, row: Any) -> Any:
    """Insert a row and flush for its id."""
    session.add(row)
    await session.flush()
    return row


async def add_all(session: AsyncSession, rows: Sequence[Any]) -> None:
    """Insert rows and flush for their ids (one INSERT for rows of one kind)."""
    session.add_all(rows)
    await session.flush()


async def taken_since(session: AsyncSession, rep_ids: Sequence[int], since: datetime) -> dict[int, int]:
    """New leads each rep received since ``since`` (hand-overs included, escalations not)."""
    if not rep_ids:
        return {}
    rows = await session.execute(
        select(Assignment.rep_id, func.count())
        .where(Assignment.rep_id.in_(rep_ids), Assignment.assigned_at >= since, Assignment.escalation_level == 0)
        .group_by(Assignment.rep_id)
    )
    return {rep_id: int(count) for rep_id, count in rows}


async def lock_pool(session: AsyncSession, key: str) -> RoutingPool:
    """The pool's fair-order row, created if new and locked until commit (one decision at a time)."""
    await session.execute(_insert(session)(RoutingPool).values(key=key, virtual_time=0.0).on_conflict_do_nothing())
    stmt = select(RoutingPool).where(RoutingPool.key == key).with_for_update()
    return (await session.scalars(stmt.execution_options(populate_existing=True))).one()


async def turns(session: AsyncSession, key: str) -> dict[int, RoutingTurn]:
    """Each rep's place in the pool's order."""
    stmt = select(RoutingTurn).where(RoutingTurn.pool_key == key)
    return {t.rep_id: t for t in (await session.scalars(stmt.execution_options(populate_existing=True))).all()}


async def pending_deadline(session: AsyncSession, key: str) -> Deadline | None:
    """The deadline with this key, if still pending."""
    stmt = select(Deadline).where(Deadline.key == key, Deadline.done_at.is_(None))
    return (await session.scalars(stmt)).one_or_none()


async def add_deadline(session: AsyncSession, values: dict[str, Any]) -> None:
    """Schedule a deadline once per key (a retried job does not schedule it twice)."""
    await add_deadlines(session, [values])


_ADD_DEADLINES = {
    name: insert(cast(Table, Deadline.__table__)).on_conflict_do_nothing(index_elements=["key"])
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
"""Built once, the rows given at execution: a multi-VALUES statement built for each call's rows cost more Python
than the rows' round trip (the commit schedules the stuck-lead checks of every new lead)."""


async def add_deadlines(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Schedule deadlines, each once per key, in one execution (rows with the same keys)."""
    if rows:
        await session.execute(_ADD_DEADLINES[session.get_bind().dialect.name], list(rows))


async def close_deadlines(
    session: AsyncSession,
    *,
    assignment_id: int | None = None,
    contact_id: int | None = None,
    kinds: Sequence[str],
    outcome: str,
    now: datetime,
) -> None:
    """Mark the pending deadlines of an assignment (or contact) of these kinds done."""
    stmt = update(Deadline).where(Deadline.done_at.is_(None), Deadline.kind.in_(kinds))
    if assignment_id is not None:
        stmt = stmt.where(Deadline.assignment_id == assignment_id)
    if contact_id is not None:
        stmt = stmt.where(Deadline.contact_id == contact_id)
    await session.execute(stmt.values(done_at=now, outcome=outcome).execution_options(synchronize_session=False))


async def close_contact_deadlines(session: AsyncSession, contact_id: int, *, outcome: str, now: datetime) -> None:
    """Mark every pending deadline of the contact done, whatever its kind."""
    stmt = update(Deadline).where(Deadline.done_at.is_(None), Deadline.contact_id == contact_id)
    await session.execute(stmt.values(done_at=now, outcome=outcome).execution_options(synchronize_session=False))


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Deadline]:
    """Due, pending deadlines, locked; rows another worker holds are skipped, not waited for."""
    stmt = (
        select(Deadline)
        .where(Deadline.done_at.is_(None), Deadline.due_at <= now)
        .order_by(Deadline.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(stmt)).all())


async def queued(session: AsyncSession, contact_id: int) -> QueuedLead | None:
    """The contact's place in the unassigned queue."""
    return await session.get(QueuedLead, contact_id)


async def queued_among(session: AsyncSession, contact_ids: Sequence[int]) -> set[int]:
    """Which of these contacts wait in the unassigned queue."""
    if not contact_ids:
        return set()
    stmt = select(QueuedLead.contact_id).where(QueuedLead.contact_id.in_(contact_ids))
    return set((await session.scalars(stmt)).all())


async def dequeue(session: AsyncSession, contact_id: int) -> None:
    """Take the contact off the unassigned queue."""
    await session.execute(delete(QueuedLead).where(QueuedLead.contact_id == contact_id))


async def claim_queue(session: AsyncSession, now: datetime, limit: int) -> list[QueuedLead]:
    """Queued leads due for another try, oldest first, locked (skipping ones another worker holds)."""
    stmt = (
        select(QueuedLead)
        .where(QueuedLead.next_attempt_at <= now)
        .order_by(QueuedLead.queued_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(stmt)).all())


async def retry_queue_now(session: AsyncSession, now: datetime) -> None:
    """Make every queued lead due now (a rep came back or freed up)."""
    await session.execute(update(QueuedLead).values(next_attempt_at=now).execution_options(synchronize_session=False))


async def queue_page(session: AsyncSession, *, team_ids: list[int] | None, limit: int) -> list[QueuedLead]:
    """The unassigned queue, oldest first."""
    stmt = select(QueuedLead).order_by(QueuedLead.queued_at, QueuedLead.contact_id)
    if team_ids is not None:
        stmt = stmt.where(QueuedLead.team_id.in_(team_ids) | QueuedLead.team_id.is_(None))
    return list((await session.scalars(stmt.limit(limit))).all())


async def queue_counts(session: AsyncSession, team_ids: list[int]) -> dict[int, int]:
    """Queued leads per team."""
    if not team_ids:
        return {}
    rows = await session.execute(
        select(QueuedLead.team_id, func.count()).where(QueuedLead.team_id.in_(team_ids)).group_by(QueuedLead.team_id)
    )
    return {team_id: int(count) for team_id, count in rows if team_id is not None}


async def latest_stage_change(session: AsyncSession, contact_id: int) -> StageChange | None:
    """The contact's newest stage change."""
    stmt = (
        select(StageChange)
        .where(StageChange.contact_id == contact_id)
        .order_by(StageChange.changed_at.desc(), StageChange.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).one_or_none()


async def stage_changes_of(session: AsyncSession, contact_id: int) -> list[StageChange]:
    """The contact's stage log, oldest first."""
    stmt = select(StageChange).where(StageChange.contact_id == contact_id).order_by(StageChange.id)
    return list((await session.scalars(stmt)).all())


async def performances(session: AsyncSession) -> dict[int, RepPerformance]:
    """Every rep's last measured results."""
    return {p.rep_id: p for p in (await session.scalars(select(RepPerformance))).all()}


async def move_assignment(session: AsyncSession, assignment: Assignment, contact_id: int) -> None:
    """Re-point an assignment and its pending deadlines at another contact (a merge)."""
    await session.execute(
        update(Deadline)
        .where(Deadline.assignment_id == assignment.id)
        .values(contact_id=contact_id)
        .execution_options(synchronize_session=False)
    )
    assignment.contact_id = contact_id
    await session.flush()
