"""REST endpoints of routing: manual assignment, assignment history, stages, activities, the queue, rep results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hub import clock
from hub.contacts.api import MERGED_REDIRECT, ContactIdPath, visible_contact
from hub.deps import ManagerDep, RuntimeDep, SessionDep
from hub.errors import Forbidden, UnprocessableInput
from hub.reps import repository as reps_repo
from hub.reps.visibility import ScopeDep
from hub.routing import ownership, performance, repository, stages
from hub.routing.schemas import (
    ActivityCreate,
    AssignmentOut,
    AssignRequest,
    PerformanceOut,
    QueuedLeadOut,
    StageChangeOut,
    StageRequest,
)
from hub.timeline import service as timeline
from hub.timeline.schemas import TimelineEntryOut
from hub.validation import MAX_ID, utc_filter

router = APIRouter(tags=["routing"])


@router.post(
    "/api/contacts/{contact_id}/assign", response_model=AssignmentOut, status_code=201, responses=MERGED_REDIRECT
)
async def assign_contact(
    contact_id: ContactIdPath, spec: AssignRequest, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> AssignmentOut:
    """Give the lead to a rep by hand (managers and admins); overrides the rules and is recorded."""
    if scope.principal.role == "rep":
        raise Forbidden("only managers and admins assign leads", field="rep_id")
    contact = await visible_contact(session, scope, contact_id)
    if not scope.sees_owner(spec.rep_id):
        raise Forbidden(f"rep {spec.rep_id} is not in your teams", field="rep_id")
    await ownership.hand_over(
        session, contact, spec.rep_id, runtime.rules.current, clock.now(), by=scope.principal, reason=spec.reason
    )
    current = await repository.open_assignment(session, contact.id)
    assert current is not None
    await session.commit()
    return AssignmentOut.of(current)


@router.get("/api/contacts/{contact_id}/assignments", response_model=list[AssignmentOut], responses=MERGED_REDIRECT)
async def list_assignments(contact_id: ContactIdPath, session: SessionDep, scope: ScopeDep) -> list[AssignmentOut]:
    """Every hand-over of the lead, oldest first, with reasons (rule, manual, missed deadline, escalation)."""
    contact = await visible_contact(session, scope, contact_id)
    return [AssignmentOut.of(a) for a in await repository.assignments_of(session, contact.id)]


@router.post("/api/contacts/{contact_id}/stage", response_model=StageChangeOut | None, responses=MERGED_REDIRECT)
async def move_stage(
    contact_id: ContactIdPath, spec: StageRequest, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> StageChangeOut | None:
    """Move the lead to a stage (lost needs a loss reason); null when it is already there."""
    contact = await visible_contact(session, scope, contact_id)
    change = await stages.change_stage(
        session,
        contact,
        spec.stage,
        runtime.rules.current.pipeline,
        clock.now(),
        actor=scope.principal.name,
        reason=spec.reason,
        loss_reason=spec.loss_reason,
    )
    await session.commit()
    return StageChangeOut.of(change) if change is not None else None


@router.get("/api/contacts/{contact_id}/stages", response_model=list[StageChangeOut], responses=MERGED_REDIRECT)
async def stage_log(contact_id: ContactIdPath, session: SessionDep, scope: ScopeDep) -> list[StageChangeOut]:
    """The lead's stage log, oldest first (the funnel reports read this)."""
    contact = await visible_contact(session, scope, contact_id)
    return [StageChangeOut.of(c) for c in await stages.stage_log(session, contact.id)]


@router.post(
    "/api/contacts/{contact_id}/activities",
    response_model=TimelineEntryOut,
    status_code=201,
    responses=MERGED_REDIRECT,
)
async def log_activity(
    contact_id: ContactIdPath, spec: ActivityCreate, session: SessionDep, scope: ScopeDep
) -> TimelineEntryOut:
    """Log a call, meeting, email, reply or note; by the lead's owner it is a first touch."""
    contact = await visible_contact(session, scope, contact_id)
    principal = scope.principal
    rep_id = principal.rep_id
    if spec.rep_id is not None and spec.rep_id != principal.rep_id:
        if principal.role == "rep":
            raise Forbidden("a rep logs activities as themselves", field="rep_id")
        if await reps_repo.get(session, spec.rep_id) is None:
            raise UnprocessableInput(f"rep {spec.rep_id} does not exist", field="rep_id")
        if not scope.sees_owner(spec.rep_id):
            # It counts as that rep's work (their first touch, the rep activity report): a team's manager logs
            # for the reps of their teams only.
            raise Forbidden(f"rep {spec.rep_id} is not in your teams", field="rep_id")
        rep_id = spec.rep_id
    now = clock.now()
    occurred = utc_filter(spec.occurred_at, "occurred_at") or now
    if occurred > now:
        raise UnprocessableInput("occurred_at is in the future", field="occurred_at")
    data = {"type": spec.type, "outcome": spec.outcome, "note": spec.note, "rep_id": rep_id, "by": principal.name}
    entry = await timeline.append(
        session,
        contact_id=contact.id,
        kind="activity",
        source="api",
        occurred_at=occurred,
        data={k: v for k, v in data.items() if v is not None},
    )
    await session.commit()
    return TimelineEntryOut.model_validate(entry)


@router.get("/api/routing/queue", response_model=list[QueuedLeadOut])
async def routing_queue(
    session: SessionDep,
    principal: ManagerDep,
    scope: ScopeDep,
    team_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueuedLeadOut]:
    """Leads no rep could take, oldest first; a team manager sees their teams' queue."""
    team_ids: list[int] | None = [team_id] if team_id is not None else None
    if not scope.everything and principal.rep_id is not None:
        managed = await reps_repo.teams_managed_by(session, principal.rep_id)
        team_ids = [t for t in (team_ids or managed) if t in managed]
    found = await repository.queue_page(session, team_ids=team_ids, limit=limit)
    return [QueuedLeadOut.of(q) for q in found]


@router.get("/api/routing/performance", response_model=list[PerformanceOut])
async def rep_performance(session: SessionDep, _principal: ManagerDep) -> list[PerformanceOut]:
    """Each rep's conversion and speed to first touch over the window, and the weight routing gives them."""
    rows = await repository.performances(session)
    return [PerformanceOut.of(rows[k]) for k in sorted(rows)]


@router.post("/api/routing/performance/recompute", response_model=list[PerformanceOut])
async def recompute_performance(
    session: SessionDep, _principal: ManagerDep, runtime: RuntimeDep
) -> list[PerformanceOut]:
    """Measure now instead of waiting for the scheduled run."""
    rows = await performance.recompute(session, runtime.rules.current, clock.now())
    await session.commit()
    return [PerformanceOut.of(r) for r in rows]
