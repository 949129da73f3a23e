"""Tell a rep something: stored once per dedupe key, listed by the API (and, later, pushed by the worker)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.notify.models import Notification


async def notify(
    session: AsyncSession,
    *,
    rep_id: int,
    kind: str,
    message: str,
    dedupe_key: str,
    contact_id: int | None = None,
    data: dict[str, Any] | None = None,
    deliver: bool = False,
) -> None:
    """Queue a notification; the same ``dedupe_key`` twice (a retried job) is stored once.

    ``deliver``: also push it to the rep's alert channels (hub.notify.delivery), starting now.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(Notification)
        .values(
            rep_id=rep_id,
            kind=kind,
            contact_id=contact_id,
            message=message[:500],
            data=data or {},
            dedupe_key=dedupe_key[:160],
            created_at=clock.now(),
            deliver_at=clock.now() if deliver else None,
            deliveries={},
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    await session.execute(stmt)


async def for_rep(
    session: AsyncSession, rep_id: int, *, unread_only: bool, limit: int, before_id: int | None
) -> list[Notification]:
    """A rep's notifications, newest first."""
    stmt = select(Notification).where(Notification.rep_id == rep_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(Notification.id < before_id)
    stmt = stmt.order_by(Notification.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def mark_read(session: AsyncSession, rep_id: int, notification_ids: list[int]) -> int:
    """Mark these of the rep's notifications read; returns how many changed."""
    result = await session.execute(
        update(Notification)
        .where(Notification.rep_id == rep_id, Notification.id.in_(notification_ids), Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def notified_since(session: AsyncSession, *, contact_id: int, kind: str, since: datetime) -> bool:
    """True when someone was told ``kind`` about this contact after ``since`` (the contact/kind/time index)."""
    stmt = (
        select(Notification.id)
        .where(Notification.contact_id == contact_id, Notification.kind == kind, Notification.created_at > since)
        .limit(1)
    )
    return (await session.scalar(stmt)) is not None
