"""The period a row falls in, computed by the database so reports can GROUP BY it on both backends.

A local day is 23, 24 or 25 hours long and a month 28 to 31 days, so no arithmetic on UTC times
gives the period; instead the window's period starts (UTC) are compared with the row's time in a
nested CASE shaped like a binary search: about log2(periods) comparisons a row (7 for 90 days).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    SQLColumnExpression,
    case,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.reports.window import Window

REPORT_WORK_MEM = "64MB"
"""PostgreSQL's work_mem for one report read that groups or sorts a window's rows (a few hundred thousand)."""


def period_starts(window: Window) -> list[datetime]:
    """Each period's first moment (UTC), in the order of ``window.periods()``."""
    return [start for start, _ in window.period_bounds().values()]


def period_index(column: SQLColumnExpression[Any], window: Window) -> ColumnElement[int]:
    """The 0-based index into ``window.periods()`` of the period holding ``column`` (rows inside the window)."""
    return _bisect(column, period_starts(window), 0, len(window.periods()) - 1)


def _bisect(column: SQLColumnExpression[Any], starts: list[datetime], low: int, high: int) -> ColumnElement[int]:
    if low == high:
        # A literal, not a bound parameter: the same expression may appear twice in one statement.
        return literal_column(str(low), Integer)
    middle = (low + high + 1) // 2
    return case(
        (column < starts[middle], _bisect(column, starts, low, middle - 1)),
        else_=_bisect(column, starts, middle, high),
    )


async def grouped_totals(session: AsyncSession, inner: Select[*tuple[Any, ...]], keys: int) -> list[Row[Any]]:
    """``inner``'s first ``keys`` columns as GROUP BY keys, then the row count and the sum of each other column.

    Grouping over a subquery lets the keys be expressions with parameters (the period CASE): PostgreSQL
    would not match ``$1`` in the select list with ``$9`` in the GROUP BY of the same expression.
    """
    labelled = [column.label(f"c{index}") for index, column in enumerate(inner.selected_columns)]
    sub = inner.with_only_columns(*labelled).subquery()
    columns = list(sub.c)
    key_columns, value_columns = columns[:keys], columns[keys:]
    sums = [func.coalesce(func.sum(column), 0) for column in value_columns]
    stmt = select(*key_columns, func.count(), *sums).group_by(*key_columns)
    # The planner cannot tell how few (rep, period) groups the CASE yields: it expects one per row and,
    # under the default 4 MB, sorts every row for the GROUP BY, spilling to disk (0.6 s of a 90-day window
    # with 1M contacts). A hash of the groups in memory takes ~12 MB.
    await use_report_work_mem(session)
    return list((await session.execute(stmt)).all())


async def use_report_work_mem(session: AsyncSession) -> None:
    """On PostgreSQL, let this transaction's sorts and hashes use REPORT_WORK_MEM (SET LOCAL: until it ends)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
