"""The funnel report: the cohort that entered inside the window, how far it got, how long each stage took.

The cohort is the leads (stage_changes entry rows) or deals (deal_stage_changes creation rows) that
entered inside the window, each in the period of its entry; their whole later history, up to now, counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import UnprocessableInput
from hub.policy.schemas import DEFAULT_PIPELINE, Pipeline, RulesFile
from hub.reports.dimensions import Dimension, label, teams_of_reps
from hub.reports.funnel_paths import LOST, WON, Move, Path, walk
from hub.reports.funnel_queries import HistoryRow, deal_history, deal_products, lead_history
from hub.reports.funnel_schemas import FunnelCsvRow, FunnelReport, FunnelSlice, FunnelStage, LossCount, Subject
from hub.reports.params import ReportRequest
from hub.reports.schemas import percentile
from hub.reps.models import Rep, Team

ALL = "all"
"""The one slice of a report without ``by``."""


@dataclass
class Tally:
    """Running sums of one (period, slice) cohort."""

    steps: int
    entries: int = 0
    strict: list[int] = field(default_factory=list)
    reached: Counter[str] = field(default_factory=Counter)
    visits: dict[str, list[float]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    loss_reasons: Counter[str] = field(default_factory=Counter)
    funnel_days: list[float] = field(default_factory=list)

    def add(self, path: Path) -> None:
        """Count one member."""
        if not self.strict:
            self.strict = [0] * self.steps
        self.entries += 1
        for index in range(path.reached_strict):
            self.strict[index] += 1
        self.reached.update(path.reached_any)
        for stage, days in path.visits:
            self.visits.setdefault(stage, []).append(days)
        self.outcomes[path.outcome] += 1
        if path.outcome == "lost":
            self.loss_reasons[label(path.loss_reason)] += 1
        if path.funnel_days is not None:
            self.funnel_days.append(path.funnel_days)


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
) -> FunnelReport:
    """The funnel of the leads or deals that entered inside the window, per period of entry and slice."""
    pipeline = funnel_pipeline(rules, subject, pipeline_name, by, request.filters.product is not None)
    steps = [*pipeline.open_stages, WON]
    name = pipeline_name or DEFAULT_PIPELINE
    if subject == "leads":
        rows = await lead_history(session, request, by)
    else:
        rows = await deal_history(session, request, by, name)
    slicer = await _slicer(session, request, by, name)
    tallies: dict[tuple[str, str], Tally] = {}
    for _, member_rows in groupby(rows, key=lambda row: row.member_id):
        history = list(member_rows)
        path = walk([_move(row, pipeline) for row in history], steps)
        period = request.window.period_of(history[0].entered_at)
        for value in slicer.values(history[0]):
            tallies.setdefault((period, value), Tally(len(steps))).add(path)
    return FunnelReport(
        meta=request.meta(request.window.zone.key),
        subject=subject,
        pipeline=name,
        by=by,
        stages=[*pipeline.open_stages, pipeline.outcome_stage("won")],
        slices=_slices(request, tallies, steps, pipeline.outcome_stage("won"), slicer.names, by),
    )


def _move(row: HistoryRow, pipeline: Pipeline) -> Move:
    """A log row as a funnel move: the open stage it went to, or won / lost."""
    if row.status is not None:  # deals say won or lost in the status; their stage may stay where it was
        key = row.status if row.status in (WON, LOST) else (row.stage or "")
    else:
        outcome = next((s.outcome for s in pipeline.stages if s.name == row.stage), None)
        key = outcome or (row.stage or "")
    return Move(key=key, at=row.changed_at, loss_reason=row.loss_reason)


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
        if self.by == "rep":
            return [label(row.owner_rep_id)]
        if self.by == "team":
            return [label(self.teams.get(row.owner_rep_id) if row.owner_rep_id is not None else None)]
        if self.by == "product":
            return sorted({label(p) for p in self.products.get(row.member_id, [])}) or [label(None)]
        if self.by == "contact_type":
            return ["new" if row.slice_value >= self.window_start else "existing"]
        return [label(row.slice_value)]


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
    strict = tally.strict or [0] * len(steps)
    reached = [tally.reached[step] for step in steps]
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
                conversion_next_any=None if last else _ratio(reached[index + 1], reached[index]),
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
        won=tally.outcomes["won"],
        lost=tally.outcomes["lost"],
        open=tally.outcomes["open"],
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
