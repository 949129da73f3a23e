"""The rep activity report's reads: each log filtered by its indexed time column, grouped in SQL by rep and period.

Every query keeps rows whose time falls in the window and whose rep the caller may see; rows are
keyed by ``(rep_id, period index)`` where the period index points into ``window.periods()``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, SQLColumnExpression, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import ApiKey
from hub.calls.models import Call
from hub.deals.models import Deal, DealStageChange
from hub.reports.activity_periods import grouped_totals, period_index
from hub.reports.params import ReportRequest
from hub.reports.schemas import percentile
from hub.reports.sql_time import epoch_micros
from hub.routing.models import Assignment, Deadline, StageChange
from hub.tasks.models import Task
from hub.timeline.models import RepWork

MISSED_OUTCOMES = ("missed", "voicemail")


def in_window(column: SQLColumnExpression[Any], request: ReportRequest) -> ColumnElement[bool]:
    """``column`` inside the report's window."""
    return and_(column >= request.window.start, column < request.window.end)


def rep_reach(column: SQLColumnExpression[Any], request: ReportRequest) -> ColumnElement[bool]:
    """Rows of a rep the caller may see (rows with no rep never count in a per-rep report)."""
    if request.rep_ids is None:
        return column.is_not(None)
    return column.in_(sorted(request.rep_ids))


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 when ``condition`` holds, else 0 (summed by grouped_totals)."""
    return case((condition, 1), else_=0)


async def assignment_counts(session: AsyncSession, request: ReportRequest) -> list[Any]:
    """``(rep_id, period, received, touched)``: assignments received in the window and the ones touched since."""
    inner = select(
        Assignment.rep_id,
        period_index(Assignment.assigned_at, request.window),
        flag(Assignment.first_touch_at.is_not(None)),
    ).where(in_window(Assignment.assigned_at, request), rep_reach(Assignment.rep_id, request))
    return await grouped_totals(session, inner, keys=2)


async def first_touches(session: AsyncSession, request: ReportRequest) -> list[Any]:
    """``(rep_id, period, median seconds, p90 seconds)`` to the first touch of the assignments received in the window.

    PostgreSQL takes the percentiles itself (percentile_cont, the definition ``schemas.percentile`` follows), so
    ~100k waits on a 90-day window never cross the wire; SQLite has no ordered-set aggregates and sends the waits.
    """
    waited = (epoch_micros(Assignment.first_touch_at) - epoch_micros(Assignment.assigned_at)).label("waited")
    inner = select(
        Assignment.rep_id.label("rep_id"), period_index(Assignment.assigned_at, request.window).label("period"), waited
    ).where(
        in_window(Assignment.assigned_at, request),
        rep_reach(Assignment.rep_id, request),
        Assignment.first_touch_at.is_not(None),
    )
    if session.get_bind().dialect.name != "postgresql":
        return per_key_percentiles(list((await session.execute(inner)).all()))
    sub = inner.subquery()
    # Seconds as float8 from whole microseconds: the very float Python's percentile() is given.
    seconds = sub.c.waited.cast(Float) / literal(1_000_000.0, Float)
    stmt = select(
        sub.c.rep_id,
        sub.c.period,
        func.percentile_cont(0.5).within_group(seconds),
        func.percentile_cont(0.9).within_group(seconds),
    ).group_by(sub.c.rep_id, sub.c.period)
    # Rounded here, as percentile() rounds, rather than by numeric rounding in SQL (half away from zero).
    return [(rep, period, _round4(median), _round4(p90)) for rep, period, median, p90 in await session.execute(stmt)]


def _round4(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def per_key_percentiles(rows: list[Any]) -> list[tuple[int, int, float | None, float | None]]:
    """``(rep_id, period, microseconds)`` rows as ``(rep_id, period, median seconds, p90 seconds)``."""
    waits: dict[tuple[int, int], list[float]] = {}
    for rep_id, period, micros in rows:
        # Microseconds / 10**6 is the very float timedelta.total_seconds() gives.
        waits.setdefault((int(rep_id), int(period)), []).append(micros / 1_000_000)
    return [(rep, period, percentile(v, 0.5), percentile(v, 0.9)) for (rep, period), v in waits.items()]


async def sla_breaches(session: AsyncSession, request: ReportRequest) -> list[Any]:
    """``(rep_id, period, count)``: first-touch deadlines breached in the window, by the assignment's rep."""
    inner = (
        select(Assignment.rep_id, period_index(Deadline.done_at, request.window))
        .select_from(Deadline)
        .join(Assignment, Assignment.id == Deadline.assignment_id)
        .where(
            Deadline.kind == "first_touch",
            Deadline.outcome == "breached",
            in_window(Deadline.done_at, request),
            rep_reach(Assignment.rep_id, request),
        )
    )
    return await grouped_totals(session, inner, keys=2)


async def calls(session: AsyncSession, request: ReportRequest) -> list[Any]:
    """``(rep_id, period, calls, answered, missed, inbound, outbound, talk seconds)`` of top-level calls."""
    answered = Call.outcome == "answered"
    inner = select(
        Call.rep_id,
        period_index(Call.started_at, request.window),
        flag(answered),
        flag(Call.outcome.in_(MISSED_OUTCOMES)),
        flag(Call.flow == "inbound"),
        flag(Call.flow == "outbound"),
        case((answered & Call.talk_seconds.is_not(None), Call.talk_seconds), else_=0),
    ).where(
        # A transfer's child legs carry the parent's sid: only the top-level call counts (as in call_report).
        Call.parent_call_sid.is_(None),
        in_window(Call.started_at, request),
        rep_reach(Call.rep_id, request),
    )
    return await grouped_totals(session, inner, keys=2)


async def rep_work_entries(session: AsyncSession, request: ReportRequest) -> list[Any]:
    """``(kind, type, rep_id, author_key_id, period, count)`` of activities, notes and reps' own sent emails."""
    # rep_work is the database's typed copy of those timeline entries: one covering index serves the window.
    inner = select(
        RepWork.kind,
        RepWork.work_type,
        RepWork.rep_id,
        RepWork.author_key_id,
        period_index(RepWork.occurred_at, request.window),
    ).where(in_window(RepWork.occurred_at, request))
    return await grouped_totals(session, inner, keys=5)


async def key_reps(session: AsyncSession) -> dict[int, int]:
    """The rep of each API key linked to one (keys are few), to credit notes to their author."""
    rows = await session.execute(select(ApiKey.id, ApiKey.rep_id).where(ApiKey.rep_id.is_not(None)))
    return {int(key_id): int(rep_id) for key_id, rep_id in rows if rep_id is not None}


async def tasks(session: AsyncSession, request: ReportRequest, column: SQLColumnExpression[Any]) -> list[Any]:
    """``(rep_id, period, count)`` of tasks whose ``column`` (done_at or overdue_at) is in the window."""
    inner = select(Task.assignee_rep_id, period_index(column, request.window)).where(
        in_window(column, request), rep_reach(Task.assignee_rep_id, request)
    )
    return await grouped_totals(session, inner, keys=2)


async def lead_advances(session: AsyncSession, request: ReportRequest, pairs: list[tuple[str, str]]) -> list[Any]:
    """``(owner, period, count)`` of lead stage changes whose (from, to) stages are one of ``pairs``."""
    if not pairs:
        return []
    inner = select(StageChange.owner_rep_id, period_index(StageChange.changed_at, request.window)).where(
        tuple_(StageChange.from_stage, StageChange.to_stage).in_(pairs),
        in_window(StageChange.changed_at, request),
        rep_reach(StageChange.owner_rep_id, request),
    )
    return await grouped_totals(session, inner, keys=2)


async def deal_advances(
    session: AsyncSession, request: ReportRequest, triples: list[tuple[str, str, str]]
) -> list[Any]:
    """``(owner, period, count)`` of deal stage changes whose (pipeline, from, to) is one of ``triples``, not a loss."""
    if not triples:
        return []
    inner = (
        select(DealStageChange.owner_rep_id, period_index(DealStageChange.changed_at, request.window))
        .select_from(DealStageChange)
        .join(Deal, Deal.id == DealStageChange.deal_id)
        .where(
            tuple_(Deal.pipeline, DealStageChange.from_stage, DealStageChange.to_stage).in_(triples),
            or_(DealStageChange.to_status.is_(None), DealStageChange.to_status != "lost"),
            in_window(DealStageChange.changed_at, request),
            rep_reach(DealStageChange.owner_rep_id, request),
        )
    )
    return await grouped_totals(session, inner, keys=2)


async def deal_outcomes(session: AsyncSession, request: ReportRequest) -> list[Any]:
    """``(owner, period, won|lost, count, amount in the report currency)`` of deals still won or lost.

    A deal is won (lost) at its latest log row to that status while it still is: ``deals.status`` and
    ``deals.closed_at`` mirror that row, so joining on them keeps exactly one row per closed deal.
    """
    inner = (
        select(
            DealStageChange.owner_rep_id,
            period_index(DealStageChange.changed_at, request.window),
            DealStageChange.to_status,
            case((DealStageChange.currency == request.currency, DealStageChange.amount_cents), else_=0),
        )
        .select_from(DealStageChange)
        .join(
            Deal,
            and_(
                Deal.id == DealStageChange.deal_id,
                Deal.status == DealStageChange.to_status,
                Deal.closed_at == DealStageChange.changed_at,
            ),
        )
        .where(
            DealStageChange.to_status.in_(("won", "lost")),
            in_window(DealStageChange.changed_at, request),
            rep_reach(DealStageChange.owner_rep_id, request),
        )
    )
    return await grouped_totals(session, inner, keys=3)
