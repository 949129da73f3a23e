"""Report use cases: call counts and talk time per rep or per day, in the viewer's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls import repository as calls
from hub.calls.models import Call
from hub.calls.schemas import CallReport, CallReportRow
from hub.reports.activity_periods import period_index
from hub.reports.window import Window
from hub.reps import service as reps

DAYS_PER_QUERY = 366
"""Local days grouped by one query: its CASE over day starts stays small however long the range is."""

Totals = list[int]
"""calls, answered, missed, inbound, outbound, talk seconds, answered calls with a talk time."""


async def call_report(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    group_by: str,
    time_zone: str,
    reach: calls.RepReach = None,
) -> CallReport:
    """Calls started in [since, until), grouped by rep or by local day; child legs are not counted twice. ``reach``
    limits it to the calls of the caller's reps (a team's manager), None counts every call."""
    if group_by == "day":
        found = await _by_local_day(session, since, until, ZoneInfo(time_zone), reach)
    else:
        found = await _by_rep(session, since, until, reach)
    rows = {key: _row(key, numbers) for key, numbers in found.items()}
    totals = _row("total", [sum(column) for column in zip(*found.values(), strict=True)] if found else [0] * 7)
    if group_by == "rep":
        names = {str(r.id): r.name for r in await reps.list_reps(session, include_inactive=True)}
        for row in rows.values():
            row.rep_name = names.get(row.key)
    ordered = sorted(rows.values(), key=_order_key(group_by))
    return CallReport(since=since, until=until, group_by=group_by, time_zone=time_zone, rows=ordered, totals=totals)


async def _by_rep(session: AsyncSession, since: datetime, until: datetime, reach: calls.RepReach) -> dict[str, Totals]:
    found = await calls.report_totals(session, since, until, Call.rep_id, reach)
    return {("none" if rep_id is None else str(rep_id)): [int(n) for n in numbers] for rep_id, *numbers in found}


async def _by_local_day(
    session: AsyncSession, since: datetime, until: datetime, zone: ZoneInfo, reach: calls.RepReach
) -> dict[str, Totals]:
    """Totals per local day, the day computed in SQL from the days' first moments (exact across DST)."""
    first, last = await calls.report_span(session, since, until, reach)
    if first is None or last is None:
        return {}
    out: dict[str, Totals] = {}
    day, last_day = first.astimezone(zone).date(), last.astimezone(zone).date()
    while day <= last_day:
        window = Window(day, min(last_day, day + timedelta(days=DAYS_PER_QUERY - 1)), zone, "day")
        labels = window.periods()
        start, end = max(since, window.start), min(until, window.end)
        key = period_index(Call.started_at, window)
        for index, *numbers in await calls.report_totals(session, start, end, key, reach):
            out[labels[int(index)]] = [int(n) for n in numbers]
        day = window.last_day + timedelta(days=1)
    return out


def _row(key: str, numbers: Totals) -> CallReportRow:
    number, answered, missed, inbound, outbound, talk, timed = numbers
    return CallReportRow(
        key=key,
        calls=number,
        answered=answered,
        missed=missed,
        inbound=inbound,
        outbound=outbound,
        talk_seconds=talk,
        average_talk_seconds=round(talk / timed, 1) if timed else None,
    )


def _order_key(group_by: str) -> Any:
    if group_by == "day":
        return lambda row: row.key
    return lambda row: (-row.calls, row.key)
