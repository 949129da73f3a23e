"""Report use cases: call counts and talk time per rep or per day, in the viewer's time zone."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls import repository as calls
from hub.calls.schemas import CallReport, CallReportRow
from hub.reps import service as reps

MISSED_OUTCOMES = frozenset({"missed", "voicemail"})


async def call_report(
    session: AsyncSession, *, since: datetime, until: datetime, group_by: str, time_zone: str
) -> CallReport:
    """Calls started in [since, until), grouped by rep or by local day; child legs are not counted twice."""
    zone = ZoneInfo(time_zone)
    rows: dict[str, CallReportRow] = {}
    talk_counts: dict[str, int] = defaultdict(int)
    totals = CallReportRow(key="total")
    total_answered_talk = 0
    for rep_id, started_at, flow, outcome, talk_seconds in await calls.report_rows(session, since, until):
        key = str(rep_id) if group_by == "rep" and rep_id is not None else "none"
        if group_by == "day":
            key = started_at.astimezone(zone).date().isoformat()
        row = rows.setdefault(key, CallReportRow(key=key))
        for target in (row, totals):
            _count(target, flow, outcome, talk_seconds)
        if outcome == "answered" and talk_seconds is not None:
            talk_counts[key] += 1
            total_answered_talk += 1
    for key, row in rows.items():
        row.average_talk_seconds = round(row.talk_seconds / talk_counts[key], 1) if talk_counts[key] else None
    totals.average_talk_seconds = round(totals.talk_seconds / total_answered_talk, 1) if total_answered_talk else None
    if group_by == "rep":
        names = {str(r.id): r.name for r in await reps.list_reps(session, include_inactive=True)}
        for row in rows.values():
            row.rep_name = names.get(row.key)
    ordered = sorted(rows.values(), key=_order_key(group_by))
    return CallReport(since=since, until=until, group_by=group_by, time_zone=time_zone, rows=ordered, totals=totals)


def _count(row: CallReportRow, flow: str, outcome: str | None, talk_seconds: int | None) -> None:
    row.calls += 1
    row.inbound += flow == "inbound"
    row.outbound += flow == "outbound"
    row.answered += outcome == "answered"
    row.missed += outcome in MISSED_OUTCOMES
    if outcome == "answered" and talk_seconds:
        row.talk_seconds += talk_seconds


def _order_key(group_by: str) -> Any:
    if group_by == "day":
        return lambda row: row.key
    return lambda row: (-row.calls, row.key)
