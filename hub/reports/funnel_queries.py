"""The funnel's reads: a cohort found by an indexed range on its entry rows, then its whole history.

One query per subject returns the cohort's log rows (oldest first per member) with the columns the
funnel needs and the member's slice value, so the service aggregates in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, null, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.reports.dimensions import Dimension, contact_attribute, contact_filters, deal_product_filter
from hub.reports.params import ReportRequest
from hub.routing.models import StageChange

CONTACT_ATTRIBUTES = frozenset({"source", "utm_source", "utm_medium", "utm_campaign", "country"})


@dataclass(frozen=True)
class HistoryRow:
    """One log row of a cohort member, with what the member is sliced and reached by."""

    member_id: int
    entered_at: datetime
    owner_rep_id: int | None
    slice_value: Any
    stage: str | None
    status: str | None
    """deals: open, won or lost; leads: None (the stage says it)."""
    changed_at: datetime
    loss_reason: str | None


def select_columns(*columns: Any) -> Select[Any]:
    """``select(*columns)`` with rows typed loosely: callers unpack them into a dataclass by position."""
    return select(*columns)


def _slice_column(by: Dimension | None) -> ColumnElement[Any]:
    """The contact column a slice reads (rep, team and product come from elsewhere)."""
    if by in CONTACT_ATTRIBUTES:
        return contact_attribute(by)  # type: ignore[arg-type]
    if by == "contact_type":
        return Contact.created_at.expression
    return null()


def _narrowed(query: Select[Any], request: ReportRequest, owner: ColumnElement[int | None]) -> Select[Any]:
    """The query kept to the owners the caller may see and the contact filters asked for."""
    owner_clause = request.owner_clause(owner)
    if owner_clause is not None:
        query = query.where(owner_clause)
    return query.where(*contact_filters(request))


async def lead_history(session: AsyncSession, request: ReportRequest, by: Dimension | None) -> list[HistoryRow]:
    """Every stage change of the leads that entered the funnel inside the window (merged contacts skipped)."""
    window = request.window
    entry = aliased(StageChange, name="entry")
    move = aliased(StageChange, name="move")
    query: Select[Any] = (
        select_columns(
            entry.contact_id,
            entry.changed_at,
            Contact.owner_rep_id,
            _slice_column(by),
            move.to_stage,
            null(),
            move.changed_at,
            move.loss_reason,
        )
        .join(Contact, Contact.id == entry.contact_id)
        .join(move, and_(move.contact_id == entry.contact_id, move.changed_at >= entry.changed_at))
        .where(
            entry.from_stage.is_(None),
            entry.changed_at >= window.start,
            entry.changed_at < window.end,
            Contact.merged_into_id.is_(None),
        )
        .order_by(entry.contact_id, move.changed_at, move.id)
    )
    query = _narrowed(query, request, Contact.owner_rep_id.expression)
    return [HistoryRow(*row) for row in await session.execute(query)]


def _deal_cohort(request: ReportRequest, pipeline: str) -> tuple[Any, Select[Any]]:
    """The creation rows of the pipeline's staged deals created inside the window, narrowed to reach and filters."""
    window = request.window
    entry = aliased(DealStageChange, name="entry")
    query: Select[Any] = (
        select_columns(entry.deal_id, entry.changed_at)
        .join(Deal, Deal.id == entry.deal_id)
        .join(Contact, Contact.id == Deal.contact_id)
        .where(
            entry.from_status.is_(None),
            entry.changed_at >= window.start,
            entry.changed_at < window.end,
            Deal.pipeline == pipeline,
            Deal.type != "non_process",
        )
    )
    product = deal_product_filter(request)
    if product is not None:
        query = query.where(product)
    return entry, _narrowed(query, request, Deal.owner_rep_id.expression)


async def deal_history(
    session: AsyncSession, request: ReportRequest, by: Dimension | None, pipeline: str
) -> list[HistoryRow]:
    """Every logged move of the pipeline's deals created inside the window (non-process deals have no funnel)."""
    entry, cohort = _deal_cohort(request, pipeline)
    move = aliased(DealStageChange, name="move")
    query: Select[Any] = (
        cohort.with_only_columns(
            entry.deal_id,
            entry.changed_at,
            Deal.owner_rep_id,
            _slice_column(by),
            move.to_stage,
            move.to_status,
            move.changed_at,
            move.loss_reason,
        )
        .join(move, and_(move.deal_id == entry.deal_id, move.changed_at >= entry.changed_at))
        .order_by(entry.deal_id, move.changed_at, move.id)
    )
    return [HistoryRow(*row) for row in await session.execute(query)]


async def deal_products(session: AsyncSession, request: ReportRequest, pipeline: str) -> dict[int, list[str]]:
    """The products of each cohort deal (a deal with two products counts in both product slices)."""
    entry, cohort = _deal_cohort(request, pipeline)
    query = cohort.with_only_columns(DealProduct.deal_id, DealProduct.product).join(
        DealProduct, DealProduct.deal_id == entry.deal_id
    )
    products: dict[int, list[str]] = {}
    for deal_id, product in await session.execute(query):
        products.setdefault(deal_id, []).append(product)
    return products
