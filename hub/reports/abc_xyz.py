"""ABC/XYZ report: won revenue per contact or product, ranked by share and by regularity over periods."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, cast, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.errors import UnprocessableInput
from hub.reports.abc_rules import GROUPS, AbcThresholds, Item, Ranked, XyzThresholds, classify
from hub.reports.abc_schemas import AbcGroupRow, AbcItemRow, AbcOf, AbcXyzReport, XyzInterval
from hub.reports.dimensions import contact_filters, deal_product_filter
from hub.reports.params import ReportRequest
from hub.reports.pipeline_won import and_all, period_index, won_in, won_rows
from hub.reports.schemas import money, ratio
from hub.reports.window import Window, local_midnight

XYZ_ORDER = ("day", "week", "month", "quarter")
"""Period lengths, shortest first: a series' periods must be longer than the regularity periods."""


def regularity_label(day: date, interval: XyzInterval) -> str:
    """The period of ``day``: the Monday of its week, ``2026-03``, or ``2026-Q1``."""
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if interval == "month":
        return day.strftime("%Y-%m")
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def regularity_periods(window: Window, interval: XyzInterval) -> list[tuple[str, datetime]]:
    """Each period of the window (the first and last may be partial) with its first moment in UTC."""
    starts: dict[str, date] = {}
    for day in window.days():
        starts.setdefault(regularity_label(day, interval), day)
    return [(label, local_midnight(day, window.zone)) for label, day in starts.items()]


async def abc_xyz_report(
    session: AsyncSession,
    request: ReportRequest,
    *,
    of: AbcOf,
    abc: AbcThresholds,
    xyz: XyzThresholds,
    xyz_interval: XyzInterval,
    group: str | None,
) -> AbcXyzReport:
    """The 9 groups and the ranked items (only ``group``'s when given); with ``interval``, each period
    is classified on its own (its regularity over the ``xyz_interval`` periods inside it)."""
    window = request.window
    if window.interval is not None and XYZ_ORDER.index(xyz_interval) >= XYZ_ORDER.index(window.interval):
        raise UnprocessableInput(
            f"a series by {window.interval} needs a shorter xyz_interval to measure regularity within each period",
            field="xyz_interval",
        )
    groups: list[AbcGroupRow] = []
    items: list[AbcItemRow] = []
    labels: list[str] = []
    total = 0
    for period, days in window.period_days().items():
        part = replace(request, window=Window(days[0], days[-1], window.zone))
        periods = regularity_periods(part.window, xyz_interval)
        ranked = classify(await _items(session, part, of, [start for _, start in periods]), abc, xyz)
        revenue = sum(entry.item.revenue for entry in ranked)
        groups.extend(group_rows(ranked, revenue, period))
        items.extend(item_rows(ranked, group, period))
        labels.extend(label for label, _ in periods)
        total += revenue
    return AbcXyzReport(
        meta=request.meta(window.zone.key),
        of=of,
        abc_thresholds=list(abc),
        xyz_thresholds=list(xyz),
        xyz_interval=xyz_interval,
        xyz_periods=labels,
        total_revenue=money(total),
        groups=groups,
        items=items,
    )


def group_rows(ranked: list[Ranked], total: int, period: str) -> list[AbcGroupRow]:
    """All 9 groups in order AX..CZ, empty ones included."""
    counts: dict[str, int] = defaultdict(int)
    revenue: dict[str, int] = defaultdict(int)
    for entry in ranked:
        counts[entry.group] += 1
        revenue[entry.group] += entry.item.revenue
    return [
        AbcGroupRow(
            period=period,
            group=name,
            abc=name[0],
            xyz=name[1],
            items=counts[name],
            revenue=money(revenue[name]),
            share=ratio(revenue[name], total) if total else None,
        )
        for name in GROUPS
    ]


def item_rows(ranked: list[Ranked], group: str | None, period: str) -> Iterator[AbcItemRow]:
    """The ranked items as rows, lazily (a CSV streams them), narrowed to ``group`` when given."""
    for entry in ranked:
        if group is not None and entry.group != group:
            continue
        yield AbcItemRow(
            period=period,
            rank=entry.rank,
            group=entry.group,
            abc=entry.abc,
            xyz=entry.xyz,
            contact_id=entry.item.contact_id,
            name=entry.item.name,
            revenue=money(entry.item.revenue),
            share=round(float(entry.share), 4),
            cumulative_share=round(float(entry.cumulative_share), 4),
            cv=None if entry.cv is None else round(entry.cv, 4),
            periods_with_revenue=sum(1 for amount in entry.item.per_period if amount),
        )


async def _items(session: AsyncSession, request: ReportRequest, of: AbcOf, starts: list[datetime]) -> list[Item]:
    """Won revenue per item and period, summed in SQL (one row per item and period with revenue)."""
    window = request.window
    change = DealStageChange
    where = [
        *won_in(window.start, window.end),
        change.currency == request.currency,
        Contact.merged_into_id.is_(None),
        request.owner_clause(change.owner_rep_id.expression),
        *contact_filters(request),
    ]
    period = period_index(change.changed_at.expression, starts).label("period")
    if of == "contacts":
        keyed: tuple[Any, ...] = (Deal.contact_id.label("contact_id"), Contact.name.label("name"))
        amount: ColumnElement[int] = change.amount_cents.expression
        query = won_rows(*keyed, period, amount.label("amount"))
        where.append(deal_product_filter(request))
    else:
        keyed = (cast(null(), BigInteger).label("contact_id"), DealProduct.product.label("name"))
        query = won_rows(*keyed, period, DealProduct.amount_cents.label("amount"))
        query = query.join(DealProduct, DealProduct.deal_id == Deal.id)
        if request.filters.product is not None:
            where.append(DealProduct.product == request.filters.product)
    facts = query.join(Contact, Contact.id == Deal.contact_id).where(and_all(where)).subquery()
    # Grouped over a subquery: PostgreSQL would not match a CASE with bound parameters in SELECT and GROUP BY.
    grouped = select(facts.c.contact_id, facts.c.name, facts.c.period, func.sum(facts.c.amount)).group_by(
        facts.c.contact_id, facts.c.name, facts.c.period
    )
    per_item: dict[tuple[int | None, str | None], list[int]] = {}
    result: Any = await session.execute(grouped)
    for contact_id, name, index, cents in result:
        per_item.setdefault((contact_id, name), [0] * len(starts))[int(index)] += int(cents or 0)
    return [
        Item(key=_sort_key(contact_id, name), contact_id=contact_id, name=name, per_period=tuple(amounts))
        for (contact_id, name), amounts in per_item.items()
    ]


def _sort_key(contact_id: int | None, name: str | None) -> str:
    # Ties in revenue rank by contact id (zero-padded so 9 sorts before 10), or by product name.
    return f"{contact_id:020d}" if contact_id is not None else name or ""
