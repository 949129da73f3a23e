"""The channels report: each channel's lead cohort per period, its cost, and how much of it was won.

The cohort of a period is the contacts first seen (``created_at``) in it, merged-away contacts aside;
their conversion and revenue count everything won so far, whenever it happened, so an older cohort
has had more time to convert than a recent one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.policy.schemas import Pipeline
from hub.reports.activity_periods import grouped_totals, period_index
from hub.reports.channel_costs import cents_to_money, spread
from hub.reports.channel_schemas import ChannelDimension, ChannelRow
from hub.reports.dimensions import contact_attribute, contact_filters, label
from hub.reports.models import ChannelCost
from hub.reports.params import ReportRequest
from hub.reports.schemas import money, ratio
from hub.routing.models import StageChange

Key = tuple[str, int]
"""(channel label, period index)."""


@dataclass
class _Cohort:
    leads: int = 0
    won: int = 0
    revenue_cents: int = 0
    cost_cents: Fraction | None = None


async def channels(
    session: AsyncSession, request: ReportRequest, by: ChannelDimension, pipeline: Pipeline
) -> list[ChannelRow]:
    """Rows per channel and period with leads or a cost, ordered by period, then most leads first."""
    cohorts: dict[Key, _Cohort] = {}
    for channel, period, leads, won, revenue in await _cohort_rows(session, request, by, pipeline):
        cohort = cohorts.setdefault((label(channel), int(period)), _Cohort())
        cohort.leads += int(leads)
        cohort.won += int(won)
        cohort.revenue_cents += int(revenue)
    if _counts_whole_channels(request, by):
        for key, cents in (await _costs(session, request, by)).items():
            cohorts.setdefault(key, _Cohort()).cost_cents = cents
    periods = request.window.periods()
    ordered = sorted(cohorts.items(), key=lambda item: (item[0][1], -item[1].leads, item[0][0]))
    return [_row(periods[period], channel, cohort) for (channel, period), cohort in ordered]


def _row(period: str, channel: str, cohort: _Cohort) -> ChannelRow:
    leads = cohort.leads
    cost = cohort.cost_cents
    return ChannelRow(
        period=period,
        channel=channel,
        leads=leads,
        cost=None if cost is None else cents_to_money(cost),
        cost_per_lead=cents_to_money(cost / leads) if cost is not None and leads else None,
        won_leads=cohort.won,
        conversion=ratio(cohort.won, leads),
        revenue=money(cohort.revenue_cents),
        revenue_per_lead=cents_to_money(Fraction(cohort.revenue_cents, leads)) if leads else None,
    )


def _counts_whole_channels(request: ReportRequest, by: ChannelDimension) -> bool:
    """Costs are per whole channel: shown only when the report counts all of each channel's leads."""
    filters = request.filters
    narrowing = [
        getattr(filters, name) for name in ("source", "utm_source", "utm_medium", "utm_campaign") if name != by
    ]
    narrowing += [filters.country, filters.rep_id, filters.team_id, filters.contact_type]
    return request.rep_ids is None and request.include_unowned and all(value is None for value in narrowing)


async def _cohort_rows(
    session: AsyncSession, request: ReportRequest, by: ChannelDimension, pipeline: Pipeline
) -> Sequence[Any]:
    """``(channel, period, leads, won leads, revenue cents)`` grouped in SQL."""
    window = request.window
    where = [Contact.created_at >= window.start, Contact.created_at < window.end, Contact.merged_into_id.is_(None)]
    where += contact_filters(request)
    owner = request.owner_clause(Contact.owner_rep_id.expression)
    if owner is not None:
        where.append(owner)
    inner = select(
        contact_attribute(by),
        period_index(Contact.created_at, window),
        case((or_(_reached_won_stage(pipeline), _has_won_deal(request)), 1), else_=0),
        func.coalesce(_won_revenue(request), 0),
    ).where(*where)
    return await grouped_totals(session, inner, keys=2)


def _reached_won_stage(pipeline: Pipeline) -> ColumnElement[bool]:
    won_stages = [stage.name for stage in pipeline.stages if stage.outcome == "won"]
    return exists(
        select(StageChange.id).where(StageChange.contact_id == Contact.id, StageChange.to_stage.in_(won_stages))
    )


def _has_won_deal(request: ReportRequest) -> ColumnElement[bool]:
    """Whether the contact has a won deal that the caller may see, by the owner when it was won, as its revenue
    is counted (``_won_revenue``): a won deal handed to another rep later stays the winner's win."""
    reach = request.owner_clause(DealStageChange.owner_rep_id.expression)
    won = select(Deal.id).join(DealStageChange, _THE_WIN).where(Deal.contact_id == Contact.id, Deal.status == "won")
    return exists(won.where(reach) if reach is not None else won)


_THE_WIN = and_(
    DealStageChange.deal_id == Deal.id,
    DealStageChange.changed_at == Deal.closed_at,
    DealStageChange.to_status == "won",
)
"""A won deal's log row of its win (not an earlier win it was reopened from)."""


def _won_revenue(request: ReportRequest) -> ColumnElement[int]:
    """The contact's won deals that the caller may see, each at the amount logged when it was won, counted when
    that row's currency is the report's (by the owner on that log row)."""
    reach = request.owner_clause(DealStageChange.owner_rep_id.expression)
    query = (
        select(func.sum(DealStageChange.amount_cents))
        .select_from(Deal)
        .join(DealStageChange, _THE_WIN)
        .where(Deal.contact_id == Contact.id, Deal.status == "won", DealStageChange.currency == request.currency)
    )
    return (query.where(reach) if reach is not None else query).scalar_subquery()


async def _costs(session: AsyncSession, request: ReportRequest, by: ChannelDimension) -> dict[Key, Fraction]:
    """Each channel's spend per period in the report currency, every cost spread evenly over its days."""
    window = request.window
    stmt = select(ChannelCost.channel, ChannelCost.starts_on, ChannelCost.ends_on, ChannelCost.amount_cents).where(
        ChannelCost.dimension == by,
        ChannelCost.currency == request.currency,
        ChannelCost.starts_on <= window.last_day,
        ChannelCost.ends_on >= window.first_day,
    )
    wanted = getattr(request.filters, by)
    if wanted is not None:
        stmt = stmt.where(ChannelCost.channel == wanted)
    spans = [(index, days[0], days[-1]) for index, days in enumerate(window.period_days().values())]
    costs: dict[Key, Fraction] = {}
    for channel, starts_on, ends_on, cents in await session.execute(stmt):
        for index, first, last in spans:
            part = spread(cents, starts_on, ends_on, first, last)
            if part:
                key = (label(channel), index)
                costs[key] = costs.get(key, Fraction(0)) + part
    return costs
