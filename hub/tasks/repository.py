"""Queries on tasks, and the reads the rep's call queue joins in (first-touch SLAs, contacts)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.models import Contact
from hub.routing.models import Assignment
from hub.tasks.ladder import ACTIVE
from hub.tasks.models import Task
from hub.tasks.schemas import PRIORITY_RANK

BUCKET_RANK = {"hot": 0, "warm": 1, "cold": 2}
"""A rep calls hot leads before warm before cold (no known warmth last)."""


async def insert(session: AsyncSession, values: dict[str, Any]) -> Task | None:
    """Insert a task; None when its ``source_key`` is taken (an automatic task made already)."""
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(Task).values(**values).on_conflict_do_nothing(index_elements=["source_key"]).returning(Task.id)
    task_id = (await session.execute(stmt)).scalar_one_or_none()
    return await session.get(Task, task_id) if task_id is not None else None


async def by_source_key(session: AsyncSession, key: str) -> Task | None:
    """The automatic task made for this fact, if any."""
    return (await session.scalars(select(Task).where(Task.source_key == key))).one_or_none()


async def get(session: AsyncSession, task_id: int, *, for_update: bool = False) -> Task | None:
    """A task by id (locked until commit when ``for_update``)."""
    stmt = select(Task).where(Task.id == task_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def busy_callbacks(
    session: AsyncSession, rep_id: int, start: datetime, end: datetime, *, except_id: int | None = None
) -> list[datetime]:
    """Due times of the rep's open and overdue callbacks between ``start`` and ``end``."""
    stmt = select(Task.due_at).where(
        Task.assignee_rep_id == rep_id,
        Task.kind == "callback",
        Task.status.in_(ACTIVE),
        Task.due_at >= start,
        Task.due_at < end,
    )
    if except_id is not None:
        stmt = stmt.where(Task.id != except_id)
    return list((await session.scalars(stmt)).all())


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Task]:
    """Tasks whose next check has come, locked; rows another worker holds are skipped, not waited for."""
    stmt = (
        select(Task)
        .where(Task.next_check_at.is_not(None), Task.next_check_at <= now)
        .order_by(Task.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def open_callbacks_of(
    session: AsyncSession, contact_id: int, rep_id: int, created_before: datetime
) -> list[Task]:
    """The contact's open or overdue callbacks assigned to the rep, made before ``created_before``."""
    stmt = (
        select(Task)
        .where(
            Task.contact_id == contact_id,
            Task.assignee_rep_id == rep_id,
            Task.kind == "callback",
            Task.status.in_(ACTIVE),
            Task.created_at <= created_before,
        )
        .with_for_update()
        .order_by(Task.id)
    )
    return list((await session.scalars(stmt)).all())


async def page(
    session: AsyncSession,
    *,
    assignees: Collection[int] | None,
    assignee: int | None,
    statuses: Collection[str] | None,
    kind: str | None,
    contact_id: int | None,
    due_before: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Task]:
    """Tasks by due time (then id), after a keyset position; ``assignees`` None means anyone's."""
    stmt = select(Task)
    if assignees is not None:
        stmt = stmt.where(Task.assignee_rep_id.in_(list(assignees) or [0]))
    if assignee is not None:
        stmt = stmt.where(Task.assignee_rep_id == assignee)
    if statuses:
        stmt = stmt.where(Task.status.in_(list(statuses)))
    if kind is not None:
        stmt = stmt.where(Task.kind == kind)
    if contact_id is not None:
        stmt = stmt.where(Task.contact_id == contact_id)
    if due_before is not None:
        stmt = stmt.where(Task.due_at < due_before)
    if after is not None:
        due, task_id = after
        stmt = stmt.where((Task.due_at > due) | ((Task.due_at == due) & (Task.id > task_id)))
    stmt = stmt.order_by(Task.due_at, Task.id).limit(limit)
    return list((await session.scalars(stmt)).all())


async def active_due_before(session: AsyncSession, rep_id: int, before: datetime, limit: int) -> list[Task]:
    """The rep's open and overdue tasks due before ``before`` in call-list order: callbacks, then by priority."""
    # Ordered in SQL by the list's own key so that ``limit`` keeps the head of the list, not the oldest tasks.
    callbacks_first = case((Task.kind == "callback", 0), else_=1)
    by_priority = case((Task.kind == "callback", 0), else_=case(PRIORITY_RANK, value=Task.priority, else_=9))
    stmt = (
        select(Task)
        .where(Task.assignee_rep_id == rep_id, Task.status.in_(ACTIVE), Task.due_at < before)
        .order_by(callbacks_first, by_priority, Task.due_at, Task.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def running_first_touches(session: AsyncSession, rep_id: int, limit: int) -> list[tuple[Assignment, Contact]]:
    """The rep's open assignments waiting for a first touch under a deadline: hot, warm, cold, each by deadline."""
    # Warmth before deadline in SQL too, or a cold lead due sooner would push a hot one past ``limit``.
    by_warmth = case(BUCKET_RANK, value=Contact.bucket, else_=len(BUCKET_RANK))
    stmt = (
        select(Assignment, Contact)
        .join(Contact, Contact.id == Assignment.contact_id)
        .where(
            Assignment.rep_id == rep_id,
            Assignment.ended_at.is_(None),
            Assignment.first_touch_at.is_(None),
            Assignment.due_at.is_not(None),
        )
        .order_by(by_warmth, Assignment.due_at, Assignment.id)
        .limit(limit)
    )
    return [(a, c) for a, c in (await session.execute(stmt)).all()]


async def contacts_by_id(session: AsyncSession, contact_ids: Collection[int]) -> dict[int, Contact]:
    """Contacts by id."""
    if not contact_ids:
        return {}
    rows = await session.scalars(select(Contact).where(Contact.id.in_(list(contact_ids))))
    return {c.id: c for c in rows}


async def move_to_contact(session: AsyncSession, from_contact: int, to_contact: int) -> int:
    """Give a merged-away contact's tasks to the contact it was merged into."""
    result = await session.execute(
        update(Task)
        .where(Task.contact_id == from_contact)
        .values(contact_id=to_contact, updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
