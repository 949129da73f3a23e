"""Team use cases: create, edit membership and manager, and who manages whom."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import lock_keys
from hub.errors import Conflict, NotFound, UnprocessableInput
from hub.reps import repository
from hub.reps.models import Rep, Team
from hub.reps.schemas import TeamCreate


async def create_team(session: AsyncSession, spec: TeamCreate) -> Team:
    """A new team; its members move to it from any team they were in."""
    await lock_keys(session, [f"team:{spec.name.lower()}"])
    if await repository.team_by_name(session, spec.name) is not None:
        raise Conflict(f"a team called {spec.name!r} exists", field="name")
    await _require_reps(session, spec.member_ids)
    if spec.manager_rep_id is not None:
        await require_manager(session, spec.manager_rep_id, field="manager_rep_id")
    team = await repository.insert_team(
        session, Team(name=spec.name, manager_rep_id=spec.manager_rep_id, time_zone=spec.time_zone)
    )
    await repository.set_members(session, team.id, spec.member_ids)
    return team


async def get_team(session: AsyncSession, team_id: int) -> Team:
    """The team, or 404."""
    team = await repository.get_team(session, team_id)
    if team is None:
        raise NotFound(f"team {team_id} does not exist", field="team_id")
    return team


async def update_team(session: AsyncSession, team: Team, changes: dict[str, Any]) -> Team:
    """Rename, change manager or zone, or replace the members."""
    for required in ("name", "time_zone"):
        if required in changes and changes[required] is None:
            raise UnprocessableInput(f"{required} cannot be null", field=required)
    members = changes.pop("member_ids", None)
    if "name" in changes and changes["name"] != team.name:
        existing = await repository.team_by_name(session, changes["name"])
        if existing is not None and existing.id != team.id:
            raise Conflict(f"a team called {changes['name']!r} exists", field="name")
    if changes.get("manager_rep_id") not in (None, team.manager_rep_id):  # one who left since may stay, not come
        await require_manager(session, changes["manager_rep_id"], field="manager_rep_id")
    for name, value in changes.items():
        setattr(team, name, value)
    if members is not None:
        await _require_reps(session, members)
        await repository.set_members(session, team.id, members)
    await session.flush()
    return team


async def list_teams(session: AsyncSession) -> list[Team]:
    """Every team, by name."""
    return await repository.all_teams(session)


async def member_ids(session: AsyncSession, team_ids: list[int]) -> dict[int, list[int]]:
    """Team id -> ids of its reps."""
    return await repository.member_ids(session, team_ids)


async def managed_team_ids(session: AsyncSession, manager_rep_id: int) -> list[int]:
    """Teams whose lead manager is this rep."""
    return await repository.teams_managed_by(session, manager_rep_id)


async def manager_of(session: AsyncSession, rep: Rep) -> Rep | None:
    """Who hears about this rep's missed deadlines: their own manager, else their team's, whichever has not left."""
    own = await _active_manager(session, rep, rep.manager_id)
    if own is not None or rep.team_id is None:
        return own
    # An own manager who has left would hear nothing, and the rep's escalations would skip to the head of sales.
    team = await repository.get_team(session, rep.team_id)
    return await _active_manager(session, rep, team.manager_rep_id if team is not None else None)


async def _active_manager(session: AsyncSession, rep: Rep, manager_id: int | None) -> Rep | None:
    if manager_id is None or manager_id == rep.id:
        return None
    manager = await repository.get(session, manager_id)
    return manager if manager is not None and manager.active else None


async def require_manager(session: AsyncSession, rep_id: int, *, field: str) -> None:
    """422 naming ``field`` unless the rep exists and has not left: a manager who left hears no escalation."""
    manager = await repository.get(session, rep_id)
    if manager is None:
        raise UnprocessableInput(f"rep {rep_id} does not exist", field=field)
    if not manager.active:
        raise UnprocessableInput(f"rep {rep_id} has left (inactive) and cannot be a manager", field=field)


async def _require_reps(session: AsyncSession, rep_ids: list[int], field: str = "member_ids") -> None:
    missing = sorted(set(rep_ids) - await repository.existing_ids(session, rep_ids))
    if missing:
        raise UnprocessableInput(f"no such reps: {', '.join(map(str, missing))}", field=field)
