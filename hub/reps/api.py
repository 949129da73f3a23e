"""REST endpoints for reps and teams."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.deps import AnyRoleDep, ManagerDep, RuntimeDep, SessionDep
from hub.errors import Forbidden
from hub.reps import service as reps
from hub.reps import teams
from hub.reps.schemas import RepCreate, RepOut, RepPatch, TeamCreate, TeamOut, TeamPatch
from hub.reps.visibility import Scope, ScopeDep, is_head_of_sales
from hub.routing import repository as routing_repo
from hub.validation import MAX_ID

router = APIRouter(prefix="/api/reps", tags=["reps"])
teams_router = APIRouter(prefix="/api/teams", tags=["teams"])
RepIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
TeamIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
_REP_SELF_SERVICE = {"status"}


async def _teams_in_reach(session: AsyncSession, scope: Scope) -> list[int] | None:
    """The teams a manager may change: those their rep leads (None: any, for those who see every lead).

    A team's manager sees the leads of their teams' members and of the reps who report to them, so making
    themselves another team's manager, or pulling its reps into their team, would widen what they see.
    """
    if scope.everything or scope.principal.role != "manager" or scope.principal.rep_id is None:
        return None
    return await teams.managed_team_ids(session, scope.principal.rep_id)


def _check_reps(scope: Scope, rep_ids: Iterable[int | None], field: str) -> None:
    """403 naming ``field`` for a rep outside the caller's teams."""
    for rep_id in rep_ids:
        if rep_id is not None and not scope.sees_owner(rep_id):
            raise Forbidden(f"rep {rep_id} is not in your teams", field=field)


def _check_email(scope: Scope, email: str | None, *, current: str | None, head_of_sales: str | None) -> None:
    """403 naming ``email`` when a caller who sees only some leads gives a rep the head of sales' address.

    The rep with that address sees every lead (hub/reps/visibility.py) and gets the last escalations: a team's
    manager giving it to their own rep record, or to a rep they add, would widen what they see to everything.
    """
    if email != current and not scope.everything and is_head_of_sales(email, head_of_sales):
        raise Forbidden(
            "only an admin, or a manager who sees every lead, gives a rep the head of sales' email address "
            "(routing.head_of_sales)",
            field="email",
        )


def _check_team(managed: list[int] | None, team_id: int | None) -> None:
    if managed is not None and team_id is not None and team_id not in managed:
        raise Forbidden(f"team {team_id} is not one you manage", field="team_id")


@router.get("", response_model=list[RepOut])
async def list_reps(
    session: SessionDep,
    _principal: AnyRoleDep,
    include_inactive: Annotated[bool, Query(description="also reps who left")] = False,
    team_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[RepOut]:
    """Every rep, oldest first (with status, capacity and current load)."""
    found = await reps.list_reps(
        session, include_inactive=include_inactive, team_ids=[team_id] if team_id is not None else None
    )
    return [RepOut.of(r) for r in found]


@router.post("", response_model=RepOut, status_code=201)
async def create_rep(
    spec: RepCreate, session: SessionDep, _principal: ManagerDep, scope: ScopeDep, runtime: RuntimeDep
) -> RepOut:
    """Add a rep (managers and admins; a team's manager to their own teams)."""
    _check_team(await _teams_in_reach(session, scope), spec.team_id)
    _check_reps(scope, [spec.manager_id], "manager_id")
    _check_email(scope, spec.email, current=None, head_of_sales=runtime.rules.current.routing.head_of_sales)
    rep = await reps.create_rep(session, spec)
    await session.commit()
    return RepOut.of(rep)


@router.get("/{rep_id}", response_model=RepOut)
async def read_rep(rep_id: RepIdPath, session: SessionDep, _principal: AnyRoleDep) -> RepOut:
    """One rep."""
    return RepOut.of(await reps.get_rep(session, rep_id))


@router.patch("/{rep_id}", response_model=RepOut)
async def update_rep(
    rep_id: RepIdPath,
    patch: RepPatch,
    session: SessionDep,
    principal: AnyRoleDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
) -> RepOut:
    """Edit a rep; a rep may only switch their own status between active and away, a team's manager edits
    the reps of their teams."""
    changes = patch.model_dump(exclude_unset=True)
    if principal.role == "rep":
        if principal.rep_id != rep_id or set(changes) - _REP_SELF_SERVICE:
            raise Forbidden("a rep may only change their own status (active or away)", field="status")
        if changes.get("status") == "inactive":
            raise Forbidden("only managers mark a rep inactive", field="status")
    managed = await _teams_in_reach(session, scope)
    if managed is not None:
        _check_reps(scope, [rep_id], "rep_id")
        _check_team(managed, changes.get("team_id"))
        _check_reps(scope, [changes.get("manager_id")], "manager_id")
    rep = await reps.get_rep(session, rep_id)
    if "email" in changes:
        head_of_sales = runtime.rules.current.routing.head_of_sales
        _check_email(scope, changes["email"], current=rep.email, head_of_sales=head_of_sales)
    rep = await reps.update_rep(session, rep, changes)
    if changes.keys() & {"status", "capacity", "daily_cap", "working_hours", "absences", "after_hours", "team_id"}:
        # Someone may now be able to take what waits in the queue: try it on the next tick, not in minutes.
        await routing_repo.retry_queue_now(session, clock.now())
    await session.commit()
    return RepOut.of(rep)


@teams_router.get("", response_model=list[TeamOut])
async def list_teams(session: SessionDep, _principal: AnyRoleDep) -> list[TeamOut]:
    """Every team with its members and queue length."""
    found = await teams.list_teams(session)
    ids = [t.id for t in found]
    members = await teams.member_ids(session, ids)
    queued = await routing_repo.queue_counts(session, ids)
    return [TeamOut.of(t, members[t.id], queued.get(t.id, 0)) for t in found]


@teams_router.post("", response_model=TeamOut, status_code=201)
async def create_team(spec: TeamCreate, session: SessionDep, _principal: ManagerDep, scope: ScopeDep) -> TeamOut:
    """Add a team (managers and admins; a team's manager with reps of their teams); listed members move to it."""
    _check_reps(scope, [spec.manager_rep_id], "manager_rep_id")
    _check_reps(scope, spec.member_ids, "member_ids")
    team = await teams.create_team(session, spec)
    await session.commit()
    return TeamOut.of(team, (await teams.member_ids(session, [team.id]))[team.id], 0)


@teams_router.get("/{team_id}", response_model=TeamOut)
async def read_team(team_id: TeamIdPath, session: SessionDep, _principal: AnyRoleDep) -> TeamOut:
    """One team."""
    team = await teams.get_team(session, team_id)
    queued = await routing_repo.queue_counts(session, [team.id])
    return TeamOut.of(team, (await teams.member_ids(session, [team.id]))[team.id], queued.get(team.id, 0))


@teams_router.patch("/{team_id}", response_model=TeamOut)
async def update_team(
    team_id: TeamIdPath, patch: TeamPatch, session: SessionDep, _principal: ManagerDep, scope: ScopeDep
) -> TeamOut:
    """Rename, change the manager or zone, or replace the members (managers and admins; a team's manager
    their own teams, with reps of their teams)."""
    changes = patch.model_dump(exclude_unset=True)
    _check_team(await _teams_in_reach(session, scope), team_id)
    _check_reps(scope, [changes.get("manager_rep_id")], "manager_rep_id")
    _check_reps(scope, changes.get("member_ids") or [], "member_ids")
    team = await teams.update_team(session, await teams.get_team(session, team_id), dict(changes))
    if "member_ids" in changes:
        await routing_repo.retry_queue_now(session, clock.now())  # new members may take what waits
    await session.commit()
    queued = await routing_repo.queue_counts(session, [team.id])
    return TeamOut.of(team, (await teams.member_ids(session, [team.id]))[team.id], queued.get(team.id, 0))
