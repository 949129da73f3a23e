"""Queries on reps."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.reps.models import Rep


async def get(session: AsyncSession, rep_id: int) -> Rep | None:
    """The rep with this id."""
    return await session.get(Rep, rep_id)


async def all_reps(session: AsyncSession, *, active_only: bool) -> list[Rep]:
    """Reps, oldest first."""
    stmt = select(Rep).order_by(Rep.id)
    if active_only:
        stmt = stmt.where(Rep.active.is_(True))
    return list((await session.scalars(stmt)).all())


async def by_phone_or_identity(session: AsyncSession, phones: list[str], identities: list[str]) -> list[Rep]:
    """Reps reachable at any of these E.164 numbers or Twilio Client identities."""
    clauses = []
    if phones:
        clauses.append(Rep.phone.in_(phones))
    if identities:
        clauses.append(Rep.client_identity.in_(identities))
    if not clauses:
        return []
    return list((await session.scalars(select(Rep).where(or_(*clauses)).order_by(Rep.id))).all())


async def taken(session: AsyncSession, column: str, value: str, *, except_id: int | None) -> bool:
    """True when another rep already has this email, phone or client identity."""
    stmt = select(Rep.id).where(getattr(Rep, column) == value)
    if except_id is not None:
        stmt = stmt.where(Rep.id != except_id)
    return (await session.scalar(stmt.limit(1))) is not None


async def insert(session: AsyncSession, rep: Rep) -> Rep:
    """Add a rep and flush for its id."""
    session.add(rep)
    await session.flush()
    return rep
