"""Pipeline report: open deals by stage and owner as the log says they stood at a moment, and stalled deals.

Every snapshot of a series comes from one query over the log (see ``pipeline_state``); the stalled
list at the window's end is read from ``deals`` when that end is now (see ``pipeline_now``) and from
the log otherwise, longest-waiting first and capped, with the full count beside it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.deals.models import Deal
from hub.policy.schemas import Pipeline
from hub.reports.params import ReportRequest
from hub.reports.pipeline_now import stalled_now
from hub.reports.pipeline_schemas import PipelineOwnerRow, PipelineReport, PipelineStageRow, StalledDealRow
from hub.reports.pipeline_state import Moment, batches, open_states
from hub.reports.schemas import money
from hub.reps.models import Rep

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class Tally:
    """Open deals of one stage and owner at one moment."""

    stage: str
    owner_rep_id: int | None
    deals: int
    amount_cents: int
    stalled: int


async def pipeline_report(
    session: AsyncSession,
    request: ReportRequest,
    name: str,
    pipeline: Pipeline,
    now: datetime,
    stalled_limit: int | None = None,
) -> PipelineReport:
    """Open deals of pipeline ``name`` at the end of the window, or of each period, and those stalled at its end.

    ``stalled_limit`` caps the stalled list (None: all of them); ``stalled_total`` counts them all.
    """
    reps = dict((await session.execute(select(Rep.id, Rep.name))).all())
    stages = _stage_order(pipeline)
    limits = stuck_limits(pipeline)
    probabilities = {stage.name: stage.probability for stage in pipeline.stages}
    periods = list(request.window.period_bounds().items())
    # A period that has not ended yet is read as it stands now.
    moments = [Moment(index, min(end, now)) for index, (_, (_, end)) in enumerate(periods)]
    tallies = await open_tallies(session, request, name, limits, moments)
    stage_rows: list[PipelineStageRow] = []
    owner_rows: list[PipelineOwnerRow] = []
    for moment, (period, _) in zip(moments, periods, strict=True):
        found = tallies.get(moment.index, [])
        found.sort(key=lambda t: (stages.get(t.stage, len(stages)), t.stage, t.owner_rep_id is None, t.owner_rep_id))
        common = {"period": period, "as_of": moment.at}
        owner_rows.extend(_owner_row(tally, probabilities.get(tally.stage), reps, common) for tally in found)
        stage_rows.extend(_stage_totals(found, probabilities, common))
    last = moments[-1]
    stalled = await stalled_deals(session, request, name, limits, last.at, reps, limit=stalled_limit, now=now)
    return PipelineReport(
        meta=request.meta(request.window.zone.key),
        pipeline=name,
        stages=stage_rows,
        rows=owner_rows,
        stalled_total=sum(tally.stalled for tally in tallies.get(last.index, [])),
        stalled=stalled,
    )


def _owner_row(
    tally: Tally, probability: float | None, reps: dict[int, str], common: dict[str, Any]
) -> PipelineOwnerRow:
    return PipelineOwnerRow(
        **common,
        stage=tally.stage,
        probability=probability,
        owner_rep_id=tally.owner_rep_id,
        owner_name=reps.get(tally.owner_rep_id) if tally.owner_rep_id is not None else None,
        deals=tally.deals,
        amount=money(tally.amount_cents),
        weighted_amount=weighted(tally.amount_cents, probability),
        stalled=tally.stalled,
    )


def weighted(amount_cents: int, probability: float | None) -> Decimal | None:
    """``amount x probability`` rounded half up to the cent; None for a stage with no probability."""
    if probability is None:
        return None
    cents = (Decimal(amount_cents) * Decimal(str(probability))).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return money(int(cents))


def stuck_limits(pipeline: Pipeline) -> dict[str, timedelta]:
    """Each open stage's ``stuck_after`` (stages without one never stall)."""
    limits: dict[str, timedelta] = {}
    for stage in pipeline.stages:
        span = stage.stuck_after.working_time if stage.stuck_after is not None else None
        if span is not None:
            limits[stage.name] = span
    return limits


async def open_tallies(
    session: AsyncSession, request: ReportRequest, name: str, limits: dict[str, timedelta], moments: list[Moment]
) -> dict[int, list[Tally]]:
    """Open deals per period (moment index), stage and owner, counted, summed and checked for stalling in SQL."""
    found: dict[int, list[Tally]] = defaultdict(list)
    for batch in batches(moments):
        state = open_states(request, name, batch, limits).subquery()
        amount = func.sum(case((state.c.currency == request.currency, state.c.amount_cents), else_=0))
        query = select(
            state.c.period, state.c.stage, state.c.owner_rep_id, func.count(), amount, func.sum(state.c.stalled)
        ).group_by(state.c.period, state.c.stage, state.c.owner_rep_id)
        result: Any = await session.execute(query)
        for period, stage, owner, count, cents, stuck in result:
            found[period].append(
                Tally(
                    stage=stage, owner_rep_id=owner, deals=count, amount_cents=int(cents or 0), stalled=int(stuck or 0)
                )
            )
    return found


async def stalled_deals(
    session: AsyncSession,
    request: ReportRequest,
    name: str,
    limits: dict[str, timedelta],
    as_of: datetime,
    reps: dict[int, str],
    *,
    limit: int | None,
    now: datetime | None,
) -> list[StalledDealRow]:
    """Open deals in their stage longer than its ``stuck_after`` at ``as_of``, longest-waiting first.

    When ``as_of`` is ``now`` the list is read from ``deals``; otherwise (or with ``now=None``) from the log.
    """
    if as_of == now:
        query = stalled_now(request, name, limits, as_of)
    else:
        state = open_states(request, name, [Moment(0, as_of)], limits).subquery()
        query = (
            select(
                state.c.deal_id,
                Deal.title,
                state.c.stage,
                state.c.owner_rep_id,
                state.c.amount_cents,
                state.c.currency,
                state.c.entered_at,
            )
            .join(Deal, Deal.id == state.c.deal_id)
            .where(state.c.stalled == 1)
            .order_by(state.c.entered_at, state.c.deal_id)
        )
    if limit is not None:
        query = query.limit(limit)
    return [
        _stalled_row(deal, as_of, limits, reps, request.currency) for deal in (await session.execute(query)).mappings()
    ]


def _stalled_row(
    deal: Any, as_of: datetime, limits: dict[str, timedelta], reps: dict[int, str], currency: str
) -> StalledDealRow:
    owner = deal["owner_rep_id"]
    return StalledDealRow(
        deal_id=deal["deal_id"],
        title=deal["title"],
        owner_rep_id=owner,
        owner_name=reps.get(owner) if owner is not None else None,
        stage=deal["stage"],
        entered_stage_at=deal["entered_at"],
        days_in_stage=round((as_of - deal["entered_at"]).total_seconds() / DAY_SECONDS, 2),
        limit_days=round(limits[deal["stage"]].total_seconds() / DAY_SECONDS, 2),
        amount=money(deal["amount_cents"]) if deal["currency"] == currency else None,
        currency=deal["currency"],
    )


def _stage_order(pipeline: Pipeline) -> dict[str, int]:
    return {stage.name: index for index, stage in enumerate(pipeline.stages)}


def _stage_totals(
    tallies: list[Tally], probabilities: dict[str, float | None], common: dict[str, Any]
) -> list[PipelineStageRow]:
    """One row per stage (tallies come sorted by stage)."""
    totals: dict[str, list[int]] = {}
    for tally in tallies:
        total = totals.setdefault(tally.stage, [0, 0, 0])
        total[0] += tally.deals
        total[1] += tally.amount_cents
        total[2] += tally.stalled
    return [
        PipelineStageRow(
            **common,
            stage=stage,
            probability=probabilities.get(stage),
            deals=deals,
            amount=money(cents),
            weighted_amount=weighted(cents, probabilities.get(stage)),
            stalled=stalled,
        )
        for stage, (deals, cents, stalled) in totals.items()
    ]
