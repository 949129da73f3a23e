"""The funnel report: the cohort that entered inside the window, how far it got, how long each stage took.

The cohort is the leads (stage_changes entry rows) or deals (deal_stage_changes creation rows) that
entered inside the window, each in the period of its entry; their whole later history, up to now, counts.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.errors import UnprocessableInput
from hub.policy.schemas import DEFAULT_PIPELINE, Pipeline, RulesFile
from hub.reports.dimensions import Dimension, label, teams_of_reps
from hub.reports.funnel_paths import LOST, SECONDS_PER_DAY, WON, Shape, shape
from hub.reports.funnel_queries import (
    CHANGED_AT,
    KEY,
    LOSS_REASON,
    MEMBER,
    OWNER,
    SLICE_VALUE,
    HistoryRow,
    deal_history,
    deal_products,
    lead_history,
    member_histories,
)
from hub.reports.funnel_schemas import FunnelCsvRow, FunnelReport, FunnelSlice, FunnelStage, LossCount, Subject
from hub.reports.params import ReportRequest
from hub.reports.schemas import percentile
from hub.reports.sql_time import micros
from hub.reports.window import Window
from hub.reps.models import Rep, Team

MICROS_PER_SECOND = 1_000_000
ALL = "all"
"""The one slice of a report without ``by``."""


@dataclass
class Tally:
    """Running sums of one (period, slice) cohort: members counted per shape of history, times as lists."""

    steps: int
    shapes: Counter[Shape] = field(default_factory=Counter)
    visits: dict[str, list[float]] = field(default_factory=dict)
    loss_reasons: Counter[str] = field(default_factory=Counter)
    funnel_days: list[float] = field(default_factory=list)

    @property
    def entries(self) -> int:
        """Members of the cohort."""
        return sum(self.shapes.values())

    def strict(self) -> list[int]:
        """Members that reached each step in order."""
        counts = [0] * self.steps
        for found, members in self.shapes.items():
            for index in range(found.reached_strict):
                counts[index] += members
        return counts

    def reached(self) -> Counter[str]:
        """Members that reached each step at all."""
        counts: Counter[str] = Counter()
        for found, members in self.shapes.items():
            for step in found.reached_any:
                counts[step] += members
        return counts

    def reached_next(self) -> list[int]:
        """Members that reached each step and (at any point) the step after it; the last step has none after it."""
        counts = [0] * self.steps
        for found, members in self.shapes.items():
            for index in found.reached_next:
                counts[index] += members
        return counts

    def outcomes(self) -> Counter[str]:
        """Members per outcome: won, lost, open."""
        counts: Counter[str] = Counter()
        for found, members in self.shapes.items():
            counts[found.outcome] += members
        return counts

    def add(self, plan: Plan, history: Sequence[HistoryRow]) -> None:
        """Count one member: its rows (oldest first) and the plan of their key sequence."""
        self.shapes[plan.shape] += 1
        # Durations inline (as _days): hundreds of thousands per report.
        for stage, start, end in plan.visits:
            days = (history[end][CHANGED_AT] - history[start][CHANGED_AT]) / MICROS_PER_SECOND / SECONDS_PER_DAY
            visits = self.visits.get(stage)
            if visits is None:
                self.visits[stage] = [days]
            else:
                visits.append(days)
        outcome = plan.shape.outcome
        if outcome == "open":
            return
        closing = history[plan.last]
        if outcome == LOST:
            self.loss_reasons[label(closing[LOSS_REASON])] += 1
        self.funnel_days.append(_days(history[0][CHANGED_AT], closing[CHANGED_AT]))


@dataclass(frozen=True)
class Plan:
    """What a member's raw key sequence says, as positions in its rows: most members share a few sequences."""

    shape: Shape
    visits: tuple[tuple[str, int, int], ...]
    """(open stage, row starting the visit, row ending it) for every finished visit."""
    last: int
    """The last row that moved the member (a later row repeating its key, e.g. a new owner, is no move)."""


def _plan(keys: tuple[str, ...], steps: tuple[str, ...]) -> Plan:
    """The plan of a raw key sequence: repeats of a key dropped, then its shape."""
    # A row repeating the key before it (e.g. a new owner) is no move.
    kept = [index for index, key in enumerate(keys) if index == 0 or key != keys[index - 1]]
    path = tuple(keys[index] for index in kept)
    found = shape(path, steps)
    visits = tuple((path[i], kept[i], kept[i + 1]) for i in found.timed)
    return Plan(found, visits, kept[-1])


def _days(start: int, end: int) -> float:
    """Elapsed days between two ``epoch_micros`` times (the same float ``timedelta.total_seconds`` gives)."""
    return (end - start) / MICROS_PER_SECOND / SECONDS_PER_DAY


def funnel_pipeline(
    rules: RulesFile, subject: Subject, name: str | None, by: Dimension | None, product: bool
) -> Pipeline:
    """The pipeline the funnel follows; 422 for a combination that has no meaning."""
    if subject == "leads":
        if name not in (None, DEFAULT_PIPELINE):
            raise UnprocessableInput("leads follow the default pipeline; `pipeline` is for deals", field="pipeline")
        if by == "product":
            raise UnprocessableInput("leads have no products: slice deals by product", field="by")
        if product:
            raise UnprocessableInput("leads have no products: filter deals by product", field="product")
        return rules.pipeline
    pipeline = rules.deal_pipeline(name or DEFAULT_PIPELINE)
    if pipeline is None:
        raise UnprocessableInput(f"no pipeline {name!r}; known: {', '.join(rules.pipeline_names)}", field="pipeline")
    return pipeline


async def funnel_report(
    session: AsyncSession,
    request: ReportRequest,
    rules: RulesFile,
    *,
    subject: Subject,
    pipeline_name: str | None,
    by: Dimension | None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> FunnelReport:
    """The funnel of the leads or deals that entered inside the window, per period of entry and slice; with
    ``sessions``, the leads' histories are read in parts on connections of their own (see LEAD_PARTS)."""
    pipeline = funnel_pipeline(rules, subject, pipeline_name, by, request.filters.product is not None)
    steps = [*pipeline.open_stages, WON]
    name = pipeline_name or DEFAULT_PIPELINE
    keys = _stage_keys(pipeline)
    slicer = await _slicer(session, request, by, name)
    counting = _Counting(tuple(steps), slicer, period_finder(request.window))
    if subject == "leads" and sessions is not None:
        await _count_leads_in_parts(counting, sessions, request, by, keys)
    elif subject == "leads":
        counting.count(await lead_history(session, request, by, keys))
    else:
        counting.count(await deal_history(session, request, by, name, keys))
    tallies = counting.tallies
    return FunnelReport(
        meta=request.meta(request.window.zone.key),
        subject=subject,
        pipeline=name,
        by=by,
        stages=[*pipeline.open_stages, pipeline.outcome_stage("won")],
        slices=_slices(request, tallies, steps, pipeline.outcome_stage("won"), slicer.names, by),
    )


class _Counting:
    """Tallies per (period, slice), filled from any number of batches of whole member histories."""

    def __init__(self, steps: tuple[str, ...], slicer: Slicer, period_of: Callable[[int], str]) -> None:
        self.steps, self.slicer, self.period_of = steps, slicer, period_of
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.plans: dict[tuple[str, ...], Plan] = {}  # most members share a few key sequences

    def count(self, rows: list[HistoryRow]) -> None:
        """Every member of ``rows`` counted in the tally of its period of entry and each of its slices."""
        tallies, plans, steps = self.tallies, self.plans, self.steps
        for history in member_histories(rows):
            sequence = tuple([row[KEY] for row in history])
            plan = plans.get(sequence)
            if plan is None:
                plan = plans[sequence] = _plan(sequence, steps)
            period = self.period_of(history[0][CHANGED_AT])
            for value in self.slicer.values(history[0]):
                tally = tallies.get((period, value))
                if tally is None:
                    tally = tallies[period, value] = Tally(len(steps))
                tally.add(plan, history)


LEAD_PARTS = 3
"""How many parts the leads' histories are read in on PostgreSQL. The database joins and sorts a part while
the hub walks the part before it, so the report's wall time is about one part's read plus the whole walk
instead of the whole read plus the whole walk (the two share the machine's cores)."""


async def _count_leads_in_parts(
    counting: _Counting,
    sessions: async_sessionmaker[AsyncSession],
    request: ReportRequest,
    by: Dimension | None,
    keys: dict[str, str],
) -> None:
    async def read(part: int) -> list[HistoryRow]:
        async with sessions() as own:
            return await lead_history(own, request, by, keys, part=(part, LEAD_PARTS))

    reads = [asyncio.ensure_future(read(part)) for part in range(LEAD_PARTS)]
    try:
        for pending in reads:
            counting.count(await pending)
    finally:
        for pending in reads:
            pending.cancel()
        # Collect the reads a failure cut short, so none is left running or unretrieved.
        await asyncio.gather(*reads, return_exceptions=True)


def _stage_keys(pipeline: Pipeline) -> dict[str, str]:
    """Each stage's funnel key: an outcome stage's won or lost, an open stage's own name."""
    return {stage.name: stage.outcome or stage.name for stage in pipeline.stages}


def period_finder(window: Window) -> Callable[[int], str]:
    """``window.period_of`` for ``epoch_micros`` times, by a search of the periods' starts."""
    if window.interval is None:
        label = window.label
        return lambda _: label
    bounds = window.period_bounds()
    labels = list(bounds)
    starts = [micros(start) for start, _ in bounds.values()]

    def period_of(at: int) -> str:
        return labels[bisect_right(starts, at) - 1]

    return period_of


@dataclass
class Slicer:
    """Which slice(s) a member counts in, and the display names of rep and team slices."""

    by: Dimension | None
    window_start: datetime
    teams: dict[int, int | None]
    products: dict[int, list[str]]
    names: dict[str, str]

    def values(self, row: HistoryRow) -> list[str]:
        """The member's slice values (a deal with two products is in both product slices)."""
        if self.by is None:
            return [ALL]
        owner = row[OWNER]
        if self.by == "rep":
            return [label(owner)]
        if self.by == "team":
            return [label(self.teams.get(owner) if owner is not None else None)]
        if self.by == "product":
            return sorted({label(p) for p in self.products.get(row[MEMBER], [])}) or [label(None)]
        if self.by == "contact_type":
            return ["new" if row[SLICE_VALUE] >= self.window_start else "existing"]
        return [label(row[SLICE_VALUE])]


async def _slicer(session: AsyncSession, request: ReportRequest, by: Dimension | None, pipeline: str) -> Slicer:
    teams = await teams_of_reps(session) if by == "team" else {}
    products = await deal_products(session, request, pipeline) if by == "product" else {}
    names: dict[str, str] = {}
    if by == "rep":
        names = {str(rep_id): rep_name for rep_id, rep_name in await session.execute(select(Rep.id, Rep.name))}
    elif by == "team":
        names = {str(team_id): team_name for team_id, team_name in await session.execute(select(Team.id, Team.name))}
    return Slicer(by, request.window.start, teams, products, names)


def _slices(
    request: ReportRequest,
    tallies: dict[tuple[str, str], Tally],
    steps: Sequence[str],
    won_name: str,
    names: dict[str, str],
    by: Dimension | None,
) -> list[FunnelSlice]:
    """Every period times every slice seen, so a series shows a slice's empty periods too."""
    values = [ALL] if by is None else sorted({value for _, value in tallies})
    return [
        _slice(period, value, names.get(value), tallies.get((period, value)) or Tally(len(steps)), steps, won_name)
        for period in request.window.periods()
        for value in values
    ]


def _slice(period: str, value: str, name: str | None, tally: Tally, steps: Sequence[str], won_name: str) -> FunnelSlice:
    strict = tally.strict()
    reached_counts = tally.reached()
    reached = [reached_counts[step] for step in steps]
    reached_next = tally.reached_next()
    outcomes = tally.outcomes()
    stages = []
    for index, step in enumerate(steps):
        visits = tally.visits.get(step, [])
        last = index == len(steps) - 1
        stages.append(
            FunnelStage(
                stage=won_name if step == WON else step,
                position=index + 1,
                reached_strict=strict[index],
                reached_any=reached[index],
                conversion_next_strict=None if last else _ratio(strict[index + 1], strict[index]),
                conversion_next_any=None if last else _ratio(reached_next[index], reached[index]),
                cumulative_strict=_ratio(strict[index], tally.entries),
                cumulative_any=_ratio(reached[index], tally.entries),
                timed_visits=len(visits),
                median_days_in_stage=percentile(visits, 0.5),
                p90_days_in_stage=percentile(visits, 0.9),
            )
        )
    return FunnelSlice(
        period=period,
        slice=value,
        slice_name=name,
        entries=tally.entries,
        won=outcomes["won"],
        lost=outcomes["lost"],
        open=outcomes["open"],
        lost_by_reason=[LossCount(loss_reason=r, members=n) for r, n in sorted(tally.loss_reasons.items())],
        median_funnel_days=percentile(tally.funnel_days, 0.5),
        stages=stages,
    )


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def funnel_csv_rows(report: FunnelReport) -> Iterator[FunnelCsvRow]:
    """The report flattened: per period and slice, one line per stage, then one per exit (lost also by reason)."""
    for piece in report.slices:
        common: dict[str, object] = {
            "period": piece.period,
            "slice": piece.slice,
            "slice_name": piece.slice_name,
            "entries": piece.entries,
            "median_funnel_days": piece.median_funnel_days,
        }
        for stage in piece.stages:
            yield FunnelCsvRow.model_validate(
                {**common, "row_type": "stage", "loss_reason": None, "members": None, "share_of_entries": None}
                | stage.model_dump()
            )
        exits: list[tuple[str, str | None, int]] = [
            ("won", None, piece.won),
            ("lost", None, piece.lost),
            ("open", None, piece.open),
        ]
        exits[2:2] = [("lost", item.loss_reason, item.members) for item in piece.lost_by_reason]
        for outcome, reason, members in exits:
            yield _exit_row(common, outcome, reason, members)


def _exit_row(common: dict[str, object], outcome: str, reason: str | None, members: int) -> FunnelCsvRow:
    entries = common["entries"]
    assert isinstance(entries, int)
    return FunnelCsvRow.model_validate(
        {
            **common,
            "row_type": "exit",
            "stage": outcome,
            "position": None,
            "loss_reason": reason,
            "members": members,
            "share_of_entries": _ratio(members, entries),
            **dict.fromkeys(_STAGE_ONLY),
        }
    )


_STAGE_ONLY = (
    "timed_visits",
    "reached_strict",
    "reached_any",
    "conversion_next_strict",
    "conversion_next_any",
    "cumulative_strict",
    "cumulative_any",
    "median_days_in_stage",
    "p90_days_in_stage",
)
