"""Which zone a contact is called in: read what ``scheduling.choose_zones`` decides from (contact, phones, team)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact
from hub.reps import repository as reps_repo
from hub.tasks.scheduling import CallingHours, ZoneChoice, choose_zones, usable_zone


async def zones_of(
    session: AsyncSession, contacts: Sequence[Contact], settings: Settings, at: datetime
) -> dict[int, ZoneChoice]:
    """Each contact's calling zone(s), read for all of them at once."""
    if not contacts:
        return {}
    hours = CallingHours.parse(settings.calling_hours)
    identities = await contacts_repo.identities_of_many(session, [c.id for c in contacts])
    team_zones = await _owner_team_zones(session, [c.owner_rep_id for c in contacts if c.owner_rep_id is not None])
    return {
        c.id: choose_zones(
            explicit=c.time_zone,
            phones=[value for kind, value in identities.get(c.id, []) if kind == "phone"],
            team_zone=team_zones.get(c.owner_rep_id) if c.owner_rep_id is not None else None,
            default_zone=settings.default_time_zone,
            hours=hours,
            around=at,
        )
        for c in contacts
    }


async def zone_of(session: AsyncSession, contact: Contact, settings: Settings, at: datetime) -> ZoneChoice:
    """One contact's calling zone(s)."""
    return (await zones_of(session, [contact], settings, at))[contact.id]


async def rep_zone(session: AsyncSession, rep_id: int, settings: Settings) -> str:
    """The rep's own zone (tasks about no contact are shown in it)."""
    rep = await reps_repo.get(session, rep_id)
    return rep.time_zone if rep is not None and usable_zone(rep.time_zone) else settings.default_time_zone


async def viewer_zone(session: AsyncSession, rep_id: int | None, settings: Settings) -> str:
    """The zone a dashboard user reads times in: their rep's, else (a user with no rep) the hub's default."""
    return await rep_zone(session, rep_id, settings) if rep_id is not None else settings.default_time_zone


async def _owner_team_zones(session: AsyncSession, rep_ids: list[int]) -> dict[int, str]:
    reps = await reps_repo.by_ids(session, sorted(set(rep_ids)))
    zones: dict[int, str] = {}
    for rep in reps:
        team = await reps_repo.get_team(session, rep.team_id) if rep.team_id is not None else None
        if team is not None:
            zones[rep.id] = team.time_zone
    return zones
