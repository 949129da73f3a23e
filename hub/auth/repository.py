"""Queries on API keys."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import ApiKey


async def by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    """The key whose public prefix this is."""
    return (await session.scalars(select(ApiKey).where(ApiKey.prefix == prefix))).one_or_none()


async def all_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key, oldest first."""
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def count_keys(session: AsyncSession) -> int:
    """How many keys were ever issued (revoked ones included)."""
    return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)


async def insert(session: AsyncSession, key: ApiKey) -> ApiKey:
    """Add a key and flush for its id."""
    session.add(key)
    await session.flush()
    return key
