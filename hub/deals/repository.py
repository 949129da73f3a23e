"""Queries on deals, their product lines and their stage log."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.deals.models import Deal, DealProduct, DealStageChange


async def get(session: AsyncSession, deal_id: int, *, for_update: bool = False) -> Deal | None:
    """A deal by id; with ``for_update``, locked until commit and read fresh (two moves wait in turn)."""
    stmt = select(Deal).where(Deal.id == deal_id)
    if for_update:
        # NO KEY UPDATE: the log rows and product lines we insert reference the deal (KEY SHARE),
        # which a plain FOR UPDATE held by another transaction would make wait needlessly.
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


@dataclass(frozen=True)
class DealFilters:
    """What a deal list is narrowed to (every field left None: no narrowing)."""

    owner_rep_id: int | None = None
    statuses: Collection[str] | None = None
    stage: str | None = None
    pipeline: str | None = None
    contact_id: int | None = None


async def page(
    session: AsyncSession,
    filters: DealFilters,
    *,
    owners: Collection[int] | None,
    sees_unowned: bool,
    before_id: int | None,
    limit: int,
) -> list[Deal]:
    """Deals newest first (by id), before a keyset position; ``owners`` None means anyone's."""
    stmt = select(Deal)
    if owners is not None:
        visible = Deal.owner_rep_id.in_(list(owners) or [0])
        stmt = stmt.where(visible | Deal.owner_rep_id.is_(None) if sees_unowned else visible)
    if filters.owner_rep_id is not None:
        stmt = stmt.where(Deal.owner_rep_id == filters.owner_rep_id)
    if filters.statuses:
        stmt = stmt.where(Deal.status.in_(list(filters.statuses)))
    if filters.stage is not None:
        stmt = stmt.where(Deal.stage == filters.stage)
    if filters.pipeline is not None:
        stmt = stmt.where(Deal.pipeline == filters.pipeline)
    if filters.contact_id is not None:
        stmt = stmt.where(Deal.contact_id == filters.contact_id)
    if before_id is not None:
        stmt = stmt.where(Deal.id < before_id)
    return list((await session.scalars(stmt.order_by(Deal.id.desc()).limit(limit))).all())


async def products_of(session: AsyncSession, deal_ids: Collection[int]) -> dict[int, list[DealProduct]]:
    """The product lines of each deal, in the order they were given."""
    found: dict[int, list[DealProduct]] = {deal_id: [] for deal_id in deal_ids}
    if not deal_ids:
        return found
    stmt = select(DealProduct).where(DealProduct.deal_id.in_(list(deal_ids))).order_by(DealProduct.id)
    for line in await session.scalars(stmt):
        found[line.deal_id].append(line)
    return found


async def replace_products(session: AsyncSession, deal_id: int, lines: Sequence[DealProduct]) -> None:
    """Drop the deal's product lines and store ``lines`` instead."""
    await session.execute(delete(DealProduct).where(DealProduct.deal_id == deal_id))
    for line in lines:
        line.deal_id = deal_id
        session.add(line)
    await session.flush()


async def add_change(session: AsyncSession, change: DealStageChange) -> DealStageChange:
    """Append a row to the stage log."""
    session.add(change)
    await session.flush()
    return change


async def stage_log(session: AsyncSession, deal_id: int) -> list[DealStageChange]:
    """The deal's log, oldest first."""
    stmt = (
        select(DealStageChange)
        .where(DealStageChange.deal_id == deal_id)
        .order_by(DealStageChange.changed_at, DealStageChange.id)
    )
    return list((await session.scalars(stmt)).all())


async def latest_move(session: AsyncSession, deal_id: int) -> DealStageChange | None:
    """The deal's newest row that changed its stage or status (for a closed deal: the one that closed it);
    rows that only record a new owner or amount are skipped."""
    stmt = (
        select(DealStageChange)
        .where(
            DealStageChange.deal_id == deal_id,
            DealStageChange.from_stage.is_distinct_from(DealStageChange.to_stage)
            | DealStageChange.from_status.is_distinct_from(DealStageChange.to_status),
        )
        .order_by(DealStageChange.changed_at.desc(), DealStageChange.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).one_or_none()


async def move_contact(session: AsyncSession, absorbed_id: int, survivor_id: int) -> None:
    """Give the absorbed contact's deals and their log rows to the survivor."""
    await session.execute(update(Deal).where(Deal.contact_id == absorbed_id).values(contact_id=survivor_id))
    await session.execute(
        update(DealStageChange).where(DealStageChange.contact_id == absorbed_id).values(contact_id=survivor_id)
    )
