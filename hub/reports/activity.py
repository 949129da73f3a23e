"""The rep activity report: per rep and period, leads received and touched, SLA, calls, emails, tasks, moves, deals.

Each number is read from its own log (see activity_queries); every active rep in the caller's reach
gets a row for every period, zeros included, so a rep who did nothing is seen doing nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.policy.schemas import Pipeline, RulesFile
from hub.reports import activity_queries as queries
from hub.reports.activity_schemas import RepActivityRow
from hub.reports.params import ReportRequest
from hub.reports.schemas import money
from hub.reps.models import Rep
from hub.tasks.models import Task

ACTIVITY_COLUMNS = {"call": "activity_calls", "email": "activity_emails", "meeting": "activity_meetings"}
ACTIVITY_NOTE = "activity_notes"

Key = tuple[int, int]
"""(rep id, period index)."""


class _Tally:
    """Rows under construction, by rep and period; facts of reps outside the reach are dropped."""

    def __init__(self, request: ReportRequest) -> None:
        self.request = request
        self.values: dict[Key, dict[str, Any]] = {}
        self.first_touches: dict[Key, tuple[float | None, float | None]] = {}
        """(median, p90) seconds to the first touch."""

    def add(self, rep_id: int | None, period: int, **counts: int) -> None:
        if rep_id is None or not self.request.counts_rep(rep_id):
            return
        row = self.values.setdefault((int(rep_id), int(period)), {})
        for name, number in counts.items():
            row[name] = row.get(name, 0) + int(number)


PARALLEL_READS = 3
"""Reads of one report in flight at once, each on its own connection: the logs are independent, and on
PostgreSQL the report's wall time is then its slowest reads rather than all of them added up."""

Read = Callable[[AsyncSession], Awaitable[list[Any]]]


async def rep_activity(
    session: AsyncSession,
    request: ReportRequest,
    rules: RulesFile,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> list[RepActivityRow]:
    """The report's rows, ordered by period, then rep name; with ``sessions``, the logs are read concurrently."""
    lead_pairs = advances(rules.pipeline)
    deal_triples = [
        (name, from_stage, to_stage)
        for name in rules.pipeline_names
        for from_stage, to_stage in advances(rules.deal_pipeline(name))
    ]
    reads: list[Read] = [
        lambda s: queries.assignment_counts(s, request),
        lambda s: queries.first_touches(s, request),
        lambda s: queries.sla_breaches(s, request),
        lambda s: queries.calls(s, request),
        lambda s: queries.rep_work_entries(s, request),
        lambda s: queries.tasks(s, request, Task.done_at),
        lambda s: queries.tasks(s, request, Task.overdue_at),
        lambda s: queries.lead_advances(s, request, lead_pairs),
        lambda s: queries.deal_advances(s, request, deal_triples),
        lambda s: queries.deal_outcomes(s, request),
    ]
    if sessions is None:
        results = [await read(session) for read in reads]
    else:
        results = await _concurrently(sessions, reads)
    assigned, touches, breaches, calls, work, done, overdue, lead_moves, deal_moves, outcomes = results
    tally = _Tally(request)
    _leads(request, tally, assigned, touches)
    for rep_id, period, number in breaches:
        tally.add(rep_id, period, sla_breaches=number)
    for rep_id, period, number, answered, missed, inbound, outbound, talk in calls:
        tally.add(
            rep_id,
            period,
            calls=number,
            calls_answered=answered,
            calls_missed=missed,
            calls_inbound=inbound,
            calls_outbound=outbound,
            talk_time=talk,
        )
    await _rep_work(session, work, tally)
    for rep_id, period, number in done:
        tally.add(rep_id, period, tasks_done=number)
    for rep_id, period, number in overdue:
        tally.add(rep_id, period, tasks_overdue=number)
    for rep_id, period, number in lead_moves:
        tally.add(rep_id, period, lead_stage_advances=number)
    for rep_id, period, number in deal_moves:
        tally.add(rep_id, period, deal_stage_advances=number)
    for rep_id, period, status, number, cents in outcomes:
        tally.add(rep_id, period, **{f"deals_{status}": number, f"deals_{status}_cents": cents})
    return await _rows(session, request, tally)


async def _concurrently(sessions: async_sessionmaker[AsyncSession], reads: list[Read]) -> list[list[Any]]:
    """Each read in a session of its own, at most PARALLEL_READS at once, results in order."""
    limit = asyncio.Semaphore(PARALLEL_READS)

    async def run(read: Read) -> list[Any]:
        async with limit, sessions() as own:
            return await read(own)

    return list(await asyncio.gather(*(run(read) for read in reads)))


def _leads(request: ReportRequest, tally: _Tally, assigned: list[Any], first_touches: list[Any]) -> None:
    for rep_id, period, received, touched in assigned:
        tally.add(rep_id, period, new_leads=received, touched_leads=touched)
    for rep_id, period, median, p90 in first_touches:
        if request.counts_rep(rep_id):
            tally.first_touches[(int(rep_id), int(period))] = (median, p90)


async def _rep_work(session: AsyncSession, entries: list[Any], tally: _Tally) -> None:
    """Sent emails and logged activities carry ``data.rep_id``; a note is its author key's rep's."""
    key_reps: dict[int, int] | None = None
    for kind, kind_type, rep_id, author_key_id, period, number in entries:
        if kind == "email_sent":
            tally.add(rep_id, period, emails_sent=number)
        elif kind == "activity" and kind_type in ACTIVITY_COLUMNS:
            tally.add(rep_id, period, **{ACTIVITY_COLUMNS[kind_type]: number})
        elif kind == "activity" and kind_type == "note":
            tally.add(rep_id, period, **{ACTIVITY_NOTE: number})
        elif kind == "note":
            if rep_id is None and author_key_id is not None:
                key_reps = await queries.key_reps(session) if key_reps is None else key_reps
                rep_id = key_reps.get(int(author_key_id))
            tally.add(rep_id, period, **{ACTIVITY_NOTE: number})


def advances(pipeline: Pipeline | None) -> list[tuple[str, str]]:
    """Every (from, to) stage pair of ``pipeline`` that is a move forward (see is_advance)."""
    if pipeline is None:
        return []
    names = pipeline.names
    return [(a, b) for a in names for b in names if is_advance(pipeline, a, b)]


def is_advance(pipeline: Pipeline, from_stage: str, to_stage: str) -> bool:
    """A move to a later stage of the pipeline that is not a loss (winning is the last step forward)."""
    names = pipeline.names
    if from_stage not in names or to_stage not in names:
        return False
    target = pipeline.stage(to_stage)
    return names.index(to_stage) > names.index(from_stage) and (target is None or target.outcome != "lost")


async def _rows(session: AsyncSession, request: ReportRequest, tally: _Tally) -> list[RepActivityRow]:
    reps = {rep_id: (name, team_id, status) for rep_id, name, team_id, status in await _reps(session)}
    shown = {rep_id for rep_id, (_, _, status) in reps.items() if status == "active" and request.counts_rep(rep_id)}
    shown |= {rep_id for rep_id, _ in tally.values if rep_id in reps}
    ordered = sorted(shown, key=lambda rep_id: (reps[rep_id][0].casefold(), rep_id))
    rows = []
    for index, period in enumerate(request.window.periods()):
        for rep_id in ordered:
            name, team_id, _ = reps[rep_id]
            values = dict(tally.values.get((rep_id, index), {}))
            won_cents, lost_cents = values.pop("deals_won_cents", 0), values.pop("deals_lost_cents", 0)
            median, p90 = tally.first_touches.get((rep_id, index), (None, None))
            rows.append(
                RepActivityRow(
                    period=period,
                    rep_id=rep_id,
                    rep_name=name,
                    team_id=team_id,
                    **values,
                    first_touch_median=median,
                    first_touch_p90=p90,
                    deals_won_amount=money(won_cents),
                    deals_lost_amount=money(lost_cents),
                )
            )
    return rows


async def _reps(session: AsyncSession) -> Iterable[Any]:
    return (await session.execute(select(Rep.id, Rep.name, Rep.team_id, Rep.status))).all()
