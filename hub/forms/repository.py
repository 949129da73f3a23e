"""Queries on form sources."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.forms.models import FormSource


async def by_slug(session: AsyncSession, slug: str) -> FormSource | None:
    """The source with this slug."""
    return (await session.scalars(select(FormSource).where(FormSource.slug == slug))).one_or_none()


async def all_sources(session: AsyncSession) -> list[FormSource]:
    """Every source, oldest first."""
    return list((await session.scalars(select(FormSource).order_by(FormSource.id))).all())


async def insert(session: AsyncSession, source: FormSource) -> FormSource:
    """Add a source and flush for its id."""
    session.add(source)
    await session.flush()
    return source
