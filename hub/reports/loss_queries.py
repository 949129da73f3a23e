"""The loss analysis' reads: the loss rows inside the window that are still their member's latest row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.reports.dimensions import deal_product_filter, narrowed
from hub.reports.funnel_queries import select_columns
from hub.reports.params import ReportRequest
from hub.routing.models import StageChange


@dataclass(frozen=True)
class LossRow:
    """One loss: when, from which stage, why, to whom, by whom, for how much."""

    lost_at: datetime
    from_stage: str | None
    loss_reason: str | None
    competitor: str | None
    owner_rep_id: int | None
    amount_cents: int | None
    currency: str | None


async def lead_losses(session: AsyncSession, request: ReportRequest, lost_stages: list[str]) -> list[LossRow]:
    """Leads moved to a lost stage inside the window and not moved since (merged contacts skipped)."""
    window = request.window
    loss = aliased(StageChange, name="loss")
    later = aliased(StageChange, name="later")
    moved_since = exists(
        select(later.id).where(
            later.contact_id == loss.contact_id,
            or_(later.changed_at > loss.changed_at, and_(later.changed_at == loss.changed_at, later.id > loss.id)),
        )
    )
    query: Select[Any] = (
        select_columns(loss.changed_at, loss.from_stage, loss.loss_reason, null(), loss.owner_rep_id, null(), null())
        .join(Contact, Contact.id == loss.contact_id)
        .where(
            loss.to_stage.in_(lost_stages),
            loss.changed_at >= window.start,
            loss.changed_at < window.end,
            Contact.merged_into_id.is_(None),
            ~moved_since,
        )
    )
    query = narrowed(query, request, loss.owner_rep_id.expression)
    return [LossRow(*row) for row in await session.execute(query)]


async def deal_losses(session: AsyncSession, request: ReportRequest) -> list[LossRow]:
    """Deals lost inside the window and not reopened since."""
    window = request.window
    loss = aliased(DealStageChange, name="loss")
    later = aliased(DealStageChange, name="later")
    moved_since = exists(
        select(later.id).where(
            later.deal_id == loss.deal_id,
            or_(later.changed_at > loss.changed_at, and_(later.changed_at == loss.changed_at, later.id > loss.id)),
            # A row that only records a new owner or amount leaves the deal lost.
            or_(later.from_stage.is_distinct_from(later.to_stage), later.from_status.is_distinct_from(later.to_status)),
        )
    )
    query: Select[Any] = (
        select_columns(
            loss.changed_at,
            loss.from_stage,
            loss.loss_reason,
            loss.competitor,
            loss.owner_rep_id,
            loss.amount_cents,
            loss.currency,
        )
        .join(Deal, Deal.id == loss.deal_id)
        .join(Contact, Contact.id == Deal.contact_id)
        .where(
            loss.to_status == "lost",
            loss.from_status.is_distinct_from("lost"),  # the move into lost, not a later owner or amount row
            loss.changed_at >= window.start,
            loss.changed_at < window.end,
            ~moved_since,
        )
    )
    product = deal_product_filter(request)
    if product is not None:
        query = query.where(product)
    query = narrowed(query, request, loss.owner_rep_id.expression)
    return [LossRow(*row) for row in await session.execute(query)]
