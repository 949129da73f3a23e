"""What the manager page reads beside the reports: the routing queue, the reps' load, SLA breaches and
escalations, each kept to the reps the viewer may see (the same reach as the API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.reports.dimensions import contact_filters
from hub.reports.params import ReportRequest
from hub.reps import repository as reps_repo
from hub.reps.models import Rep
from hub.reps.visibility import Scope
from hub.routing import repository as routing_repo
from hub.routing.models import Assignment, QueuedLead

LISTED = 50
"""Rows each list shows (the oldest or most recent first); the count above it says how many in all."""


@dataclass(frozen=True)
class QueueRow:
    """A lead waiting in the unassigned queue."""

    queued: QueuedLead
    name: str | None
    team: str | None


@dataclass(frozen=True)
class AssignmentRow:
    """An assignment of interest (overdue, breached or escalated) with its lead's and rep's names."""

    assignment: Assignment
    lead_name: str | None
    rep_name: str


async def routing_queue(session: AsyncSession, scope: Scope, *, limit: int = LISTED) -> list[QueueRow]:
    """The unassigned queue as ``GET /api/routing/queue`` shows it to this viewer, oldest first."""
    principal = scope.principal
    team_ids: list[int] | None = None
    if not scope.everything and principal.rep_id is not None:
        team_ids = await reps_repo.teams_managed_by(session, principal.rep_id)
    found = await routing_repo.queue_page(session, team_ids=team_ids, limit=limit)
    names = await _contact_names(session, [q.contact_id for q in found])
    teams = {t.id: t.name for t in await reps_repo.all_teams(session)}
    return [QueueRow(q, names.get(q.contact_id), teams.get(q.team_id) if q.team_id else None) for q in found]


async def reps_with_load(session: AsyncSession, scope: Scope) -> list[tuple[Rep, str | None]]:
    """Active reps in reach with their team's name; ``open_leads`` is the live load routing checks."""
    teams = {t.id: t.name for t in await reps_repo.all_teams(session)}
    reps = [r for r in await reps_repo.all_reps(session, active_only=True) if scope.sees_owner(r.id)]
    return [(r, teams.get(r.team_id) if r.team_id else None) for r in reps]


async def overdue_now(session: AsyncSession, request: ReportRequest, now: datetime) -> list[AssignmentRow]:
    """Open assignments whose first-touch deadline has passed, untouched (the worker takes them back next)."""
    stmt = _assignments(request).where(
        Assignment.ended_at.is_(None),
        Assignment.first_touch_at.is_(None),
        Assignment.due_at <= now,
    )
    return await _rows(session, stmt.order_by(Assignment.due_at, Assignment.id))


async def breaches(session: AsyncSession, request: ReportRequest) -> list[AssignmentRow]:
    """Assignments taken back for a missed first touch inside the window, most recent first."""
    window = request.window
    stmt = _assignments(request).where(
        Assignment.end_reason == "sla_breach",
        Assignment.ended_at >= window.start,
        Assignment.ended_at < window.end,
    )
    return await _rows(session, stmt.order_by(Assignment.ended_at.desc(), Assignment.id.desc()))


async def escalations(session: AsyncSession, request: ReportRequest) -> list[AssignmentRow]:
    """Leads escalated to a team manager or the head of sales inside the window, most recent first."""
    window = request.window
    stmt = _assignments(request).where(
        Assignment.escalation_level > 0,
        Assignment.assigned_at >= window.start,
        Assignment.assigned_at < window.end,
    )
    return await _rows(session, stmt.order_by(Assignment.assigned_at.desc(), Assignment.id.desc()))


def _assignments(request: ReportRequest) -> Any:
    """Assignments of reps in the request's reach, of live leads matching its channel and country slices."""
    stmt = (
        select(Assignment, Contact.name, Rep.name)
        .join(Contact, Contact.id == Assignment.contact_id)
        .join(Rep, Rep.id == Assignment.rep_id)
        .where(Contact.merged_into_id.is_(None), *contact_filters(request))
    )
    rep_column: ColumnElement[int | None] = Assignment.__table__.c.rep_id
    owner = request.owner_clause(rep_column)
    return stmt if owner is None else stmt.where(owner)


async def _rows(session: AsyncSession, stmt: Any) -> list[AssignmentRow]:
    rows = (await session.execute(stmt.limit(LISTED))).all()
    return [AssignmentRow(row[0], row[1], row[2]) for row in rows]


async def _contact_names(session: AsyncSession, ids: list[int]) -> dict[int, str | None]:
    if not ids:
        return {}
    rows = await session.execute(select(Contact.id, Contact.name).where(Contact.id.in_(ids)))
    return {row[0]: row[1] for row in rows.all()}
