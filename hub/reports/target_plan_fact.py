"""Plan vs fact: each rep's monthly target against the deals it won that month, inside the window.

A month only partly inside the window keeps its whole target (no pro-rating), while its fact counts
only the window's days: a window ending today reads as month to date against the month's plan.
``window_days`` and ``month_days`` say how much of the month a row covers.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.deals.models import DealStageChange
from hub.reports.params import ReportRequest
from hub.reports.pipeline_won import and_all, period_index, won_in, won_rows
from hub.reports.schemas import ratio
from hub.reports.target_schemas import PlanFactReport, PlanFactRow
from hub.reports.targets import list_targets, month_label
from hub.reports.window import Window, local_midnight
from hub.reps.models import Rep, RepTarget


@dataclass(frozen=True)
class Month:
    """A calendar month touched by the window: its first day, and its first moment inside the window."""

    first: date
    starts_at: datetime
    window_days: int


def window_months(window: Window) -> list[Month]:
    """The months the window touches, in order."""
    days: dict[date, list[date]] = {}
    for day in window.days():
        days.setdefault(day.replace(day=1), []).append(day)
    return [Month(first, local_midnight(inside[0], window.zone), len(inside)) for first, inside in days.items()]


async def plan_vs_fact(session: AsyncSession, request: ReportRequest) -> PlanFactReport:
    """Rows for every rep in reach with a target or a won deal in a month of the window."""
    months = window_months(request.window)
    targets = {
        (t.rep_id, t.month): t
        for t in await list_targets(session, request.rep_ids, months[0].first, months[-1].first)
        if request.counts_rep(t.rep_id)
    }
    won = await _won_by_rep_month(session, request, months)
    names = dict((await session.execute(select(Rep.id, Rep.name))).all())
    keys = sorted({*targets, *((rep, months[index].first) for rep, index, _ in won)}, key=lambda k: (k[1], k[0]))
    index_of = {month.first: index for index, month in enumerate(months)}
    rows = []
    for rep_id, first in keys:
        month = months[index_of[first]]
        rows.append(_row(rep_id, names.get(rep_id), month, targets.get((rep_id, first)), won, index_of[first], request))
    meta = request.meta(request.window.zone.key)
    meta.interval = "month"
    meta.periods = [month_label(month.first) for month in months]
    return PlanFactReport(meta=meta, rows=rows)


def _row(
    rep_id: int,
    name: str | None,
    month: Month,
    target: RepTarget | None,
    won: dict[tuple[int, int, str], tuple[int, int]],
    index: int,
    request: ReportRequest,
) -> PlanFactRow:
    currency = target.currency if target is not None else request.currency
    won_count = sum(count for (rep, at, _), (count, _) in won.items() if rep == rep_id and at == index)
    won_cents = won.get((rep_id, index, currency), (0, 0))[1]
    target_cents = target.amount_cents if target is not None else None
    target_deals = target.won_deals if target is not None else None
    return PlanFactRow(
        month=month_label(month.first),
        rep_id=rep_id,
        rep_name=name,
        currency=currency,
        target_amount=_decimal(target_cents) if target_cents is not None else None,
        won_amount=_decimal(won_cents),
        attainment=ratio(won_cents, target_cents) if target_cents else None,
        target_won_deals=target_deals,
        won_deals=won_count,
        won_deals_attainment=ratio(won_count, target_deals) if target_deals else None,
        window_days=month.window_days,
        month_days=calendar.monthrange(month.first.year, month.first.month)[1],
    )


async def _won_by_rep_month(
    session: AsyncSession, request: ReportRequest, months: list[Month]
) -> dict[tuple[int, int, str], tuple[int, int]]:
    """(rep, month index, currency) -> (deals won, cents), by the owner on the won log row."""
    change = DealStageChange
    window = request.window
    facts = (
        won_rows(
            change.owner_rep_id.label("rep_id"),
            period_index(change.changed_at.expression, [month.starts_at for month in months]).label("month"),
            change.currency.label("currency"),
            change.amount_cents.label("amount"),
        )
        .where(
            and_all(
                [
                    *won_in(window.start, window.end),
                    change.owner_rep_id.is_not(None),
                    request.owner_clause(change.owner_rep_id.expression),
                ]
            )
        )
        .subquery()
    )
    query = select(facts.c.rep_id, facts.c.month, facts.c.currency, func.count(), func.sum(facts.c.amount)).group_by(
        facts.c.rep_id, facts.c.month, facts.c.currency
    )
    result: Any = await session.execute(query)
    return {(rep, int(month), currency): (count, int(cents or 0)) for rep, month, currency, count, cents in result}


def _decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))
