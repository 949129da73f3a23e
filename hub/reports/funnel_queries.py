"""The funnel's reads: a cohort found by an indexed range on its entry rows, then its whole history.

One query per subject returns the cohort's log rows as plain tuples, in no order, with the columns the
funnel needs and the member's slice value, each member's rows together in log order (``member_histories``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Select, and_, case, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.reports.activity_periods import use_report_work_mem
from hub.reports.dimensions import Dimension, contact_attribute, deal_product_filter, narrowed
from hub.reports.funnel_paths import LOST, WON
from hub.reports.params import ReportRequest
from hub.reports.sql_time import epoch_micros
from hub.routing.models import StageChange

CONTACT_ATTRIBUTES = frozenset({"source", "utm_source", "utm_medium", "utm_campaign", "country"})


HistoryRow = tuple[int, int | None, Any, str, int, str | None]
"""One log row of a cohort member, as a plain tuple (reports read hundreds of thousands): member id, owner rep id,
slice value, funnel key (see ``funnel_key``), changed at (whole microseconds since the Unix epoch, see
``epoch_micros``), loss reason. A member's first row (its entry) carries its owner and slice value.
Rows come sorted by member, then time, then log row id (not sent): the database sorts them in memory (a tenth of what
grouping them in Python cost), so ``member_histories`` only cuts the run of each member."""
MEMBER: Final = 0
OWNER: Final = 1
SLICE_VALUE: Final = 2
KEY: Final = 3
CHANGED_AT: Final = 4
LOSS_REASON: Final = 5


def funnel_key(stage: Any, status: Any, keys: dict[str, str]) -> ColumnElement[str]:
    """A log row's funnel key: won or lost (a deal's status, or a lead's outcome stage), else the stage it went to."""
    renamed = [(stage == name, key) for name, key in keys.items() if key != name]
    key: ColumnElement[str] = func.coalesce(stage, "")
    if renamed:
        key = case(*renamed, else_=key)
    if status is None:
        return key
    # A deal says won or lost in its status; its stage may stay where it was.
    return case((status.in_((WON, LOST)), status), (status.is_not(None), func.coalesce(stage, "")), else_=key)


def select_columns(*columns: Any) -> Select[Any]:
    """``select(*columns)`` with rows typed loosely: callers read them as ``HistoryRow`` tuples by position."""
    return select(*columns)


def _slice_column(by: Dimension | None) -> ColumnElement[Any]:
    """The contact column a slice reads (rep, team and product come from elsewhere)."""
    if by in CONTACT_ATTRIBUTES:
        return contact_attribute(by)  # type: ignore[arg-type]
    if by == "contact_type":
        return Contact.created_at.expression
    return null()


async def lead_history(
    session: AsyncSession,
    request: ReportRequest,
    by: Dimension | None,
    keys: dict[str, str],
    part: tuple[int, int] | None = None,
) -> list[HistoryRow]:
    """Every stage change of the leads that entered the funnel inside the window (merged contacts skipped);
    with ``part=(k, n)``, only of the leads whose id is k modulo n (a member's rows never straddle two parts)."""
    window = request.window
    entry = aliased(StageChange, name="entry")
    move = aliased(StageChange, name="move")
    # The cohort (entry rows by the changed_at index, joined to their contacts), then each member's moves by
    # the (contact_id, changed_at) index. No ORDER BY: sorting ~430k rows (1M contacts, 90 days) spilled to disk.
    cohort = narrowed(
        select_columns(
            entry.contact_id.label("member_id"),
            entry.changed_at.label("entered_at"),
            Contact.owner_rep_id.label("owner_rep_id"),
            _slice_column(by).label("slice_value"),
        )
        .join(Contact, Contact.id == entry.contact_id)
        .where(
            entry.from_stage.is_(None),
            entry.changed_at >= window.start,
            entry.changed_at < window.end,
            Contact.merged_into_id.is_(None),
            *([] if part is None else [entry.contact_id % part[1] == part[0]]),
        ),
        request,
        Contact.owner_rep_id.expression,
    ).cte("cohort")
    at_entry = move.changed_at == cohort.c.entered_at
    query: Select[Any] = select_columns(
        cohort.c.member_id,
        _at_entry(cohort.c.owner_rep_id, at_entry, "owner_rep_id"),
        _at_entry(cohort.c.slice_value, at_entry, "slice_value"),
        funnel_key(move.to_stage, None, keys),
        epoch_micros(move.changed_at).label("changed_at"),
        move.loss_reason,
    ).join(move, and_(move.contact_id == cohort.c.member_id, move.changed_at >= cohort.c.entered_at))
    return await _rows(session, query.order_by(cohort.c.member_id, move.changed_at, move.id))


def member_histories(rows: list[HistoryRow]) -> Iterator[list[HistoryRow]]:
    """Each member's rows, oldest first (by time, then log order): the first is at its entry."""
    for _, history in groupby(rows, key=_MEMBER_OF):
        yield list(history)


_MEMBER_OF = itemgetter(MEMBER)


def _at_entry(column: ColumnElement[Any], at_entry: ColumnElement[bool], name: str) -> ColumnElement[Any]:
    """A member's constant, sent on its rows at the entry instant only (the first row of its history is one)."""
    # Repeated on every later move it would be decoded hundreds of thousands of times for nothing.
    return case((at_entry, column)).label(name)


async def _rows(session: AsyncSession, query: Select[Any]) -> list[HistoryRow]:
    """The query's rows as tuples; on asyncpg its own records, read without SQLAlchemy's row building."""
    # ~430k rows sorted by member and time: in memory, not spilled to disk under the default 4 MB.
    await use_report_work_mem(session)
    connection = await session.connection()
    if connection.dialect.driver != "asyncpg":
        return cast(list[HistoryRow], (await connection.execute(query)).all())
    # Building a Row per record costs a second of CPU on a 90-day window with 1M contacts (~430k records);
    # asyncpg's records index like tuples. The statement is compiled (and its values bound) as SQLAlchemy would.
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)  # type: ignore[arg-type]
    arguments = [
        processors[name](values[name]) if name in processors else values[name] for name in compiled.positiontup or ()
    ]
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    return cast(list[HistoryRow], await driver.fetch(str(compiled), *arguments))


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
    return entry, narrowed(query, request, Deal.owner_rep_id.expression)


async def deal_history(
    session: AsyncSession, request: ReportRequest, by: Dimension | None, pipeline: str, keys: dict[str, str]
) -> list[HistoryRow]:
    """Every logged move of the pipeline's deals created inside the window (non-process deals have no funnel)."""
    entry, cohort = _deal_cohort(request, pipeline)
    move = aliased(DealStageChange, name="move")
    query = cohort.with_only_columns(
        entry.deal_id,
        Deal.owner_rep_id,
        _slice_column(by),
        funnel_key(move.to_stage, move.to_status, keys),
        epoch_micros(move.changed_at).label("changed_at"),
        move.loss_reason,
    ).join(move, and_(move.deal_id == entry.deal_id, move.changed_at >= entry.changed_at))
    return await _rows(session, query.order_by(entry.deal_id, move.changed_at, move.id))


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
