"""Queries on the inbox of raw inbound events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.inbox.models import InboundEvent, WebhookNonce


async def insert_if_absent(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert an event; None when ``(source, external_id)`` is already there (a redelivery)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(InboundEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(InboundEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find(session: AsyncSession, source: str, external_id: str) -> InboundEvent | None:
    """The stored event for a provider id."""
    stmt = select(InboundEvent).where(InboundEvent.source == source, InboundEvent.external_id == external_id)
    return (await session.scalars(stmt)).one_or_none()


async def update(session: AsyncSession, event_id: int, **values: Any) -> None:
    """Set columns of one event without loading it."""
    await session.execute(sql_update(InboundEvent).where(InboundEvent.id == event_id).values(**values))


async def list_by_status(
    session: AsyncSession, status: str, *, limit: int, before_id: int | None = None, source: str | None = None
) -> list[InboundEvent]:
    """Events of a status (e.g. spam), newest first, keyset-paginated on id."""
    stmt = select(InboundEvent).where(InboundEvent.status == status)
    if before_id is not None:
        stmt = stmt.where(InboundEvent.id < before_id)
    if source is not None:
        stmt = stmt.where(InboundEvent.source == source)
    stmt = stmt.order_by(InboundEvent.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def delete_older_than(session: AsyncSession, status: str, cutoff: datetime) -> int:
    """Drop events of a status received before ``cutoff``; returns how many."""
    stmt = delete(InboundEvent).where(InboundEvent.status == status, InboundEvent.received_at < cutoff)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def insert_nonce(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Record a nonce; False when ``(source, nonce)`` is already there."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(WebhookNonce)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "nonce"])
        .returning(WebhookNonce.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def delete_expired_nonces(session: AsyncSession, now: datetime) -> int:
    """Drop nonces past their expiry; returns how many."""
    result = await session.execute(delete(WebhookNonce).where(WebhookNonce.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)
