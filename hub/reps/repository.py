"""Queries on reps and teams."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.reps.models import Rep, Team


async def get(session: AsyncSession, rep_id: int) -> Rep | None:
    """The rep with this id."""
    return await session.get(Rep, rep_id)


async def by_email(session: AsyncSession, email: str) -> Rep | None:
    """The rep with this (normalised) email."""
    return await session.scalar(select(Rep).where(Rep.email == email))


async def all_reps(session: AsyncSession, *, active_only: bool, team_ids: list[int] | None = None) -> list[Rep]:
    """Reps, oldest first."""
    stmt = select(Rep).order_by(Rep.id)
    if active_only:
        stmt = stmt.where(Rep.status != "inactive")
    if team_ids is not None:
        stmt = stmt.where(Rep.team_id.in_(team_ids))
    return list((await session.scalars(stmt)).all())


class RoutingRep(NamedTuple):
    """The columns routing reads for every rep at every decision: plain rows, no ORM objects to build."""

    id: int
    email: str | None
    status: str
    time_zone: str
    working_hours: dict[str, Any]
    absences: list[dict[str, Any]]
    after_hours: bool
    capacity: int | None
    daily_cap: int | None
    skills: dict[str, list[str]]
    team_id: int | None
    open_leads: int


_ROUTING_VIEW = select(*(getattr(Rep, name) for name in RoutingRep._fields)).where(Rep.status != "inactive")
_ROUTING_VIEWS = (
    _ROUTING_VIEW.order_by(Rep.id),
    _ROUTING_VIEW.where(Rep.team_id.in_(bindparam("team_ids", expanding=True))).order_by(Rep.id),
)
"""Built once (everyone's, one team list's): routing reads this for every lead it routes."""


async def routing_view(session: AsyncSession, team_ids: list[int] | None) -> list[RoutingRep]:
    """Reps who have not left (of these teams, when given), as routing sees them."""
    if team_ids is None:
        rows = await session.execute(_ROUTING_VIEWS[0])
    else:
        rows = await session.execute(_ROUTING_VIEWS[1], {"team_ids": team_ids})
    return [RoutingRep._make(row) for row in rows]


async def by_ids(session: AsyncSession, rep_ids: list[int]) -> list[Rep]:
    """These reps, by id."""
    if not rep_ids:
        return []
    return list((await session.scalars(select(Rep).where(Rep.id.in_(rep_ids)).order_by(Rep.id))).all())


async def existing_ids(session: AsyncSession, rep_ids: list[int]) -> set[int]:
    """Which of these ids are reps."""
    if not rep_ids:
        return set()
    return set((await session.scalars(select(Rep.id).where(Rep.id.in_(rep_ids)))).all())


_BY_PHONE_OR_IDENTITY = (
    select(Rep)
    .where(
        or_(
            Rep.phone.in_(bindparam("phones", expanding=True)),
            Rep.client_identity.in_(bindparam("identities", expanding=True)),
        )
    )
    .order_by(Rep.id)
)
"""Built once (an empty list matches nothing): both parties of every call callback are looked up here."""


async def by_phone_or_identity(session: AsyncSession, phones: list[str], identities: list[str]) -> list[Rep]:
    """Reps reachable at any of these E.164 numbers or Twilio Client identities."""
    if not phones and not identities:
        return []
    return list((await session.scalars(_BY_PHONE_OR_IDENTITY, {"phones": phones, "identities": identities})).all())


async def taken(session: AsyncSession, column: str, value: str, *, except_id: int | None) -> bool:
    """True when another rep already has this email, phone or client identity."""
    stmt = select(Rep.id).where(getattr(Rep, column) == value)
    if except_id is not None:
        stmt = stmt.where(Rep.id != except_id)
    return (await session.scalar(stmt.limit(1))) is not None


async def insert(session: AsyncSession, rep: Rep) -> Rep:
    """Add a rep and flush for its id."""
    session.add(rep)
    await session.flush()
    return rep


async def team_exists(session: AsyncSession, team_id: int) -> bool:
    """True when the team exists."""
    return (await session.scalar(select(Team.id).where(Team.id == team_id))) is not None


async def get_team(session: AsyncSession, team_id: int) -> Team | None:
    """The team with this id."""
    return await session.get(Team, team_id)


async def team_by_name(session: AsyncSession, name: str) -> Team | None:
    """The team with this name (case-insensitive)."""
    # The exact name too: SQLite's lower() folds only ASCII, so 'É' would slip past the check into the unique index.
    return await session.scalar(select(Team).where(or_(Team.name == name, func.lower(Team.name) == name.lower())))


async def all_teams(session: AsyncSession) -> list[Team]:
    """Every team, by name."""
    return list((await session.scalars(select(Team).order_by(Team.name))).all())


async def insert_team(session: AsyncSession, team: Team) -> Team:
    """Add a team and flush for its id."""
    session.add(team)
    await session.flush()
    return team


async def set_members(session: AsyncSession, team_id: int, rep_ids: list[int]) -> None:
    """Make exactly these reps the team's members."""
    await session.execute(update(Rep).where(Rep.team_id == team_id, Rep.id.not_in(rep_ids or [0])).values(team_id=None))
    if rep_ids:
        await session.execute(update(Rep).where(Rep.id.in_(rep_ids)).values(team_id=team_id))
    await session.flush()


async def member_ids(session: AsyncSession, team_ids: list[int]) -> dict[int, list[int]]:
    """Team id -> its reps' ids."""
    members: dict[int, list[int]] = {t: [] for t in team_ids}
    if team_ids:
        rows = await session.execute(select(Rep.team_id, Rep.id).where(Rep.team_id.in_(team_ids)).order_by(Rep.id))
        for team_id, rep_id in rows:
            if team_id is not None:
                members[team_id].append(rep_id)
    return members


async def teams_managed_by(session: AsyncSession, rep_id: int) -> list[int]:
    """Ids of the teams this rep leads."""
    return list((await session.scalars(select(Team.id).where(Team.manager_rep_id == rep_id))).all())
