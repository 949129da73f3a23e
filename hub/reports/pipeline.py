"""Pipeline report: open deals by stage and owner as the log says they stood at a moment, and stalled deals.

A deal's state at a moment is its latest ``deal_stage_changes`` row before that moment, found for
every deal at once with a window function (ROW_NUMBER over each deal's rows, newest first), so the
report is the same on SQLite and PostgreSQL and never replays deals one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, false, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.db import UtcDateTime
from hub.deals.models import Deal, DealStageChange
from hub.policy.schemas import Pipeline
from hub.reports.dimensions import contact_filters, deal_product_filter
from hub.reports.params import ReportRequest
from hub.reports.pipeline_schemas import PipelineOwnerRow, PipelineReport, PipelineStageRow, StalledDealRow
from hub.reports.pipeline_won import and_all
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
    session: AsyncSession, request: ReportRequest, name: str, pipeline: Pipeline, now: datetime
) -> PipelineReport:
    """Open deals of pipeline ``name`` at the end of the window, or of each period, and those stalled at its end."""
    reps = dict((await session.execute(select(Rep.id, Rep.name))).all())
    stages = _stage_order(pipeline)
    limits = stuck_limits(pipeline)
    probabilities = {stage.name: stage.probability for stage in pipeline.stages}
    stage_rows: list[PipelineStageRow] = []
    owner_rows: list[PipelineOwnerRow] = []
    as_of = now
    for period, (_, end) in request.window.period_bounds().items():
        # A period that has not ended yet is read as it stands now.
        as_of = min(end, now)
        tallies = await open_tallies(session, request, name, limits, as_of)
        tallies.sort(key=lambda t: (stages.get(t.stage, len(stages)), t.stage, t.owner_rep_id is None, t.owner_rep_id))
        common = {"period": period, "as_of": as_of}
        for tally in tallies:
            probability = probabilities.get(tally.stage)
            owner_rows.append(
                PipelineOwnerRow(
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
            )
        stage_rows.extend(_stage_totals(tallies, probabilities, common))
    stalled = await stalled_deals(session, request, name, limits, as_of, reps)
    return PipelineReport(
        meta=request.meta(request.window.zone.key), pipeline=name, stages=stage_rows, rows=owner_rows, stalled=stalled
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
    session: AsyncSession, request: ReportRequest, name: str, limits: dict[str, timedelta], as_of: datetime
) -> list[Tally]:
    """Open deals per stage and owner at ``as_of``, counted and summed in SQL."""
    state = open_state(request, name, as_of).subquery()
    in_currency = state.c.currency == request.currency
    amount = func.sum(case((in_currency, state.c.amount_cents), else_=0))
    stalled = func.sum(case((_stalled(state, limits, as_of), 1), else_=0))
    query = select(state.c.stage, state.c.owner_rep_id, func.count(), amount, stalled).group_by(
        state.c.stage, state.c.owner_rep_id
    )
    result: Any = await session.execute(query)
    return [
        Tally(stage=stage, owner_rep_id=owner, deals=count, amount_cents=int(cents or 0), stalled=int(stuck or 0))
        for stage, owner, count, cents, stuck in result
    ]


async def stalled_deals(
    session: AsyncSession,
    request: ReportRequest,
    name: str,
    limits: dict[str, timedelta],
    as_of: datetime,
    reps: dict[int, str],
) -> list[StalledDealRow]:
    """Open deals in their stage longer than its ``stuck_after`` at ``as_of``, longest-waiting first."""
    state = open_state(request, name, as_of).subquery()
    query = select(state).where(_stalled(state, limits, as_of)).order_by(state.c.entered_at, state.c.deal_id)
    rows = []
    for deal in (await session.execute(query)).mappings():
        rows.append(
            StalledDealRow(
                deal_id=deal["deal_id"],
                title=deal["title"],
                owner_rep_id=deal["owner_rep_id"],
                owner_name=reps.get(deal["owner_rep_id"]) if deal["owner_rep_id"] is not None else None,
                stage=deal["stage"],
                entered_stage_at=deal["entered_at"],
                days_in_stage=round((as_of - deal["entered_at"]).total_seconds() / DAY_SECONDS, 2),
                limit_days=round(limits[deal["stage"]].total_seconds() / DAY_SECONDS, 2),
                amount=money(deal["amount_cents"]) if deal["currency"] == request.currency else None,
                currency=deal["currency"],
            )
        )
    return rows


def open_state(request: ReportRequest, name: str, as_of: datetime) -> Select[Any]:
    """Deals of pipeline ``name`` open in a stage at ``as_of`` (per their latest log row), in the caller's reach."""
    latest = _latest_rows(name, as_of)
    query = (
        select(
            latest.c.deal_id,
            latest.c.stage,
            latest.c.owner_rep_id,
            latest.c.amount_cents,
            latest.c.entered_at,
            Deal.title,
            Deal.currency,
        )
        .select_from(latest)
        .join(Deal, Deal.id == latest.c.deal_id)
    )
    filters = contact_filters(request)
    if filters:
        query = query.join(Contact, Contact.id == Deal.contact_id)
    return query.where(
        and_all(
            [
                latest.c.latest == 1,
                latest.c.status == "open",
                # Non-process deals have no stage: they are not in any pipeline's stages.
                latest.c.stage.is_not(None),
                request.owner_clause(latest.c.owner_rep_id),
                deal_product_filter(request),
                *filters,
            ]
        )
    )


def _latest_rows(name: str, as_of: datetime) -> Subquery:
    """Every candidate deal's log rows before ``as_of``, numbered newest first, with when it entered its stage."""
    change = DealStageChange
    # A deal enters its stage when it is created, changes stage or is reopened; an owner or amount edit is no entry.
    entering = or_(
        change.from_status.is_(None),
        change.from_stage.is_distinct_from(change.to_stage),
        change.from_status.is_distinct_from(change.to_status),
    )
    entered_at = func.max(case((entering, change.changed_at))).over(partition_by=change.deal_id)
    newest_first = func.row_number().over(
        partition_by=change.deal_id, order_by=(change.changed_at.desc(), change.id.desc())
    )
    return (
        select(
            change.deal_id.label("deal_id"),
            change.to_stage.label("stage"),
            change.to_status.label("status"),
            change.owner_rep_id.label("owner_rep_id"),
            change.amount_cents.label("amount_cents"),
            type_coerce(entered_at, UtcDateTime()).label("entered_at"),
            newest_first.label("latest"),
        )
        .join(Deal, Deal.id == change.deal_id)
        .where(
            change.changed_at < as_of,
            Deal.pipeline == name,
            # deals mirrors the log: a deal closed before as_of (and not reopened since) cannot be open then.
            or_(Deal.status == "open", Deal.closed_at >= as_of),
        )
        .subquery()
    )


def _stalled(state: Subquery, limits: dict[str, timedelta], as_of: datetime) -> ColumnElement[bool]:
    """True for a row whose stage has a limit it has sat longer than at ``as_of``."""
    if not limits:
        return false()
    return or_(*(and_(state.c.stage == stage, state.c.entered_at < as_of - limit) for stage, limit in limits.items()))


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
