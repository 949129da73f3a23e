"""The rep activity report: per rep and period, leads received and touched, SLA, calls, emails, tasks, moves, deals.

Each number is read from its own log (see activity_queries); every active rep in the caller's reach
gets a row for every period, zeros included, so a rep who did nothing is seen doing nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.policy.schemas import Pipeline, RulesFile
from hub.reports import activity_queries as queries
from hub.reports.activity_schemas import RepActivityRow
from hub.reports.params import ReportRequest
from hub.reports.schemas import money, percentile
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
        self.first_touches: dict[Key, list[float]] = {}

    def add(self, rep_id: int | None, period: int, **counts: int) -> None:
        if rep_id is None or not self.request.counts_rep(rep_id):
            return
        row = self.values.setdefault((int(rep_id), int(period)), {})
        for name, number in counts.items():
            row[name] = row.get(name, 0) + int(number)


async def rep_activity(session: AsyncSession, request: ReportRequest, rules: RulesFile) -> list[RepActivityRow]:
    """The report's rows, ordered by period, then rep name."""
    tally = _Tally(request)
    await _leads(session, request, tally)
    for rep_id, period, number in await queries.sla_breaches(session, request):
        tally.add(rep_id, period, sla_breaches=number)
    for rep_id, period, number, answered, missed, inbound, outbound, talk in await queries.calls(session, request):
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
    await _rep_work(session, request, tally)
    for rep_id, period, number in await queries.tasks(session, request, Task.done_at):
        tally.add(rep_id, period, tasks_done=number)
    for rep_id, period, number in await queries.tasks(session, request, Task.overdue_at):
        tally.add(rep_id, period, tasks_overdue=number)
    await _moves(session, request, rules, tally)
    for rep_id, period, status, number, cents in await queries.deal_outcomes(session, request):
        tally.add(rep_id, period, **{f"deals_{status}": number, f"deals_{status}_cents": cents})
    return await _rows(session, request, tally)


async def _leads(session: AsyncSession, request: ReportRequest, tally: _Tally) -> None:
    for rep_id, period, received, touched in await queries.assignment_counts(session, request):
        tally.add(rep_id, period, new_leads=received, touched_leads=touched)
    touches = tally.first_touches
    for rep_id, period, assigned_at, first_touch_at in await queries.first_touches(session, request):
        # Many rows: appended here directly; reach is checked once per key below.
        touches.setdefault((int(rep_id), int(period)), []).append((first_touch_at - assigned_at).total_seconds())
    for key in [key for key in touches if not request.counts_rep(key[0])]:
        del touches[key]


async def _rep_work(session: AsyncSession, request: ReportRequest, tally: _Tally) -> None:
    """Sent emails and logged activities carry ``data.rep_id``; a note is its author key's rep's."""
    key_reps: dict[int, int] | None = None
    for kind, kind_type, rep_id, author_key_id, period, number in await queries.rep_work_entries(session, request):
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


async def _moves(session: AsyncSession, request: ReportRequest, rules: RulesFile, tally: _Tally) -> None:
    """Stage advances, counted in SQL over the (pipeline,) from, to pairs that are advances: few rows come back."""
    lead_pairs = advances(rules.pipeline)
    for rep_id, period, number in await queries.lead_advances(session, request, lead_pairs):
        tally.add(rep_id, period, lead_stage_advances=number)
    deal_triples = [
        (name, from_stage, to_stage)
        for name in rules.pipeline_names
        for from_stage, to_stage in advances(rules.deal_pipeline(name))
    ]
    for rep_id, period, number in await queries.deal_advances(session, request, deal_triples):
        tally.add(rep_id, period, deal_stage_advances=number)


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
            touches = tally.first_touches.get((rep_id, index), [])
            rows.append(
                RepActivityRow(
                    period=period,
                    rep_id=rep_id,
                    rep_name=name,
                    team_id=team_id,
                    **values,
                    first_touch_median=percentile(touches, 0.5),
                    first_touch_p90=percentile(touches, 0.9),
                    deals_won_amount=money(won_cents),
                    deals_lost_amount=money(lost_cents),
                )
            )
    return rows


async def _reps(session: AsyncSession) -> Iterable[Any]:
    return (await session.execute(select(Rep.id, Rep.name, Rep.team_id, Rep.status))).all()
