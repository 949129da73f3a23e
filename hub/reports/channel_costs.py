"""Recording what each channel cost, and spreading a cost evenly over the days it covers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import Conflict, NotFound
from hub.reports.channel_schemas import ChannelCostCreate
from hub.reports.models import ChannelCost


async def record_cost(session: AsyncSession, spec: ChannelCostCreate, currency: str, created_by: str) -> ChannelCost:
    """Store a cost; the same channel, days and currency again is a 409 (delete the old one to replace it)."""
    existing = await session.scalar(
        select(ChannelCost.id).where(
            ChannelCost.dimension == spec.dimension,
            ChannelCost.channel == spec.channel,
            ChannelCost.starts_on == spec.starts_on,
            ChannelCost.ends_on == spec.ends_on,
            ChannelCost.currency == currency,
        )
    )
    if existing is not None:
        raise Conflict(
            f"channel cost {existing} already covers this channel, these days and currency; "
            "delete it first to replace it",
            field="channel",
        )
    cost = ChannelCost(
        dimension=spec.dimension,
        channel=spec.channel,
        starts_on=spec.starts_on,
        ends_on=spec.ends_on,
        amount_cents=int(spec.amount * 100),
        currency=currency,
        note=spec.note,
        created_by=created_by,
    )
    session.add(cost)
    await session.flush()
    return cost


async def list_costs(
    session: AsyncSession,
    *,
    dimension: str | None,
    channel: str | None,
    currency: str | None,
    overlapping: tuple[date | None, date | None],
    limit: int,
) -> Sequence[ChannelCost]:
    """Costs matching the filters (``overlapping``: costs with a day in [first, last]), oldest span first."""
    stmt = select(ChannelCost).order_by(ChannelCost.starts_on, ChannelCost.id).limit(limit)
    first, last = overlapping
    if dimension is not None:
        stmt = stmt.where(ChannelCost.dimension == dimension)
    if channel is not None:
        stmt = stmt.where(ChannelCost.channel == channel)
    if currency is not None:
        stmt = stmt.where(ChannelCost.currency == currency)
    if first is not None:
        stmt = stmt.where(ChannelCost.ends_on >= first)
    if last is not None:
        stmt = stmt.where(ChannelCost.starts_on <= last)
    return (await session.scalars(stmt)).all()


async def delete_cost(session: AsyncSession, cost_id: int) -> None:
    """Remove a recorded cost; 404 when there is none."""
    cost = await session.get(ChannelCost, cost_id)
    if cost is None:
        raise NotFound(f"channel cost {cost_id} does not exist", field="cost_id")
    await session.delete(cost)
    await session.flush()


def spread(amount_cents: int, starts_on: date, ends_on: date, first: date, last: date) -> Fraction:
    """The part of a cost (in cents, exact) that falls on the days ``first``..``last``: amount x overlap / span."""
    overlap = (min(ends_on, last) - max(starts_on, first)).days + 1
    if overlap <= 0:
        return Fraction(0)
    span = (ends_on - starts_on).days + 1
    return Fraction(amount_cents * overlap, span)


def cents_to_money(cents: Fraction) -> Decimal:
    """Exact cents as an amount with two places, rounded half to even."""
    return (Decimal(cents.numerator) / Decimal(cents.denominator) / 100).quantize(Decimal("0.01"))
