"""Rep use cases: create, edit, find who a phone number or softphone identity belongs to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.db import lock_keys
from hub.errors import Conflict, NotFound, UnprocessableInput
from hub.reps import repository
from hub.reps.models import Rep
from hub.reps.schemas import RepCreate
from hub.reps.teams import require_manager

_UNIQUE_FIELDS = ("email", "phone", "client_identity")
_NOT_NULL = ("name", "status", "time_zone", "working_hours", "absences", "after_hours", "skills", "alert_channels")
CLIENT_PREFIX = "client:"


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """Schema values as the columns keep them: JSON-ready absences and skills."""
    stored = dict(values)
    if stored.get("absences") is not None:
        stored["absences"] = [
            {"start": a["start"].isoformat(), "end": a["end"].isoformat(), "reason": a.get("reason")}
            for a in stored["absences"]
        ]
    if stored.get("skills") is not None:
        stored["skills"] = {k: v for k, v in stored["skills"].items() if v}
    return stored


async def create_rep(session: AsyncSession, spec: RepCreate) -> Rep:
    """A new rep; email, phone and client identity are each one rep's."""
    values = {k: v for k, v in _storable(spec.model_dump()).items() if v is not None}
    await _refuse_taken(session, values, except_id=None)
    await _refuse_unknown_links(session, values, rep_id=None)
    now = clock.now()
    return await repository.insert(session, Rep(**values, created_at=now, updated_at=now))


async def find_rep(session: AsyncSession, rep_id: int) -> Rep | None:
    """The rep with this id, if any."""
    return await repository.get(session, rep_id)


async def get_rep(session: AsyncSession, rep_id: int) -> Rep:
    """The rep, or 404 naming ``rep_id``."""
    rep = await repository.get(session, rep_id)
    if rep is None:
        raise NotFound(f"rep {rep_id} does not exist", field="rep_id")
    return rep


async def rep_by_email(session: AsyncSession, email: str) -> Rep | None:
    """The rep with this email (rules files name reps by email)."""
    return await repository.by_email(session, email.strip().lower())


async def update_rep(session: AsyncSession, rep: Rep, changes: dict[str, Any]) -> Rep:
    """Apply edits; nulling a required field is refused."""
    for required in _NOT_NULL:
        if required in changes and changes[required] is None:
            raise UnprocessableInput(f"{required} cannot be null", field=required)
    changes = _storable(changes)
    await _refuse_taken(session, changes, except_id=rep.id)
    # Only links that change: a client sending the whole record back keeps a manager who has left since.
    await _refuse_unknown_links(session, {k: v for k, v in changes.items() if getattr(rep, k) != v}, rep_id=rep.id)
    for name, value in changes.items():
        setattr(rep, name, value)
    rep.updated_at = clock.now()
    await session.flush()
    return rep


async def list_reps(
    session: AsyncSession, *, include_inactive: bool = False, team_ids: list[int] | None = None
) -> list[Rep]:
    """Reps, oldest first; only those of ``team_ids`` when given."""
    return await repository.all_reps(session, active_only=not include_inactive, team_ids=team_ids)


async def rep_for_endpoint(session: AsyncSession, *endpoints: str) -> Rep | None:
    """The rep behind a call endpoint: an E.164 number or ``client:<identity>``; first match wins."""
    return next((rep for rep in await reps_at(session, *endpoints) if rep is not None), None)


async def reps_at(session: AsyncSession, *endpoints: str) -> list[Rep | None]:
    """The rep behind each endpoint (None where there is none), looked up in one query."""
    phones = [e for e in endpoints if e.startswith("+")]
    identities = [e.removeprefix(CLIENT_PREFIX) for e in endpoints if e.startswith(CLIENT_PREFIX)]
    found = await repository.by_phone_or_identity(session, phones, identities)
    return [
        next((rep for rep in found if endpoint in (rep.phone, f"{CLIENT_PREFIX}{rep.client_identity}")), None)
        for endpoint in endpoints
    ]


async def _refuse_taken(session: AsyncSession, values: dict[str, Any], *, except_id: int | None) -> None:
    # Two requests claiming the same phone at once would both pass the check below, and the second
    # would hit the unique constraint (a 500); taking the values' locks first makes it a 409.
    await lock_keys(session, [f"rep:{c}:{values[c]}" for c in _UNIQUE_FIELDS if values.get(c) is not None])
    for column in _UNIQUE_FIELDS:
        value = values.get(column)
        if value is not None and await repository.taken(session, column, value, except_id=except_id):
            raise Conflict(f"another rep already has this {column.replace('_', ' ')}", field=column)


async def _refuse_unknown_links(session: AsyncSession, values: dict[str, Any], *, rep_id: int | None) -> None:
    team_id, manager_id = values.get("team_id"), values.get("manager_id")
    if team_id is not None and not await repository.team_exists(session, team_id):
        raise UnprocessableInput(f"team {team_id} does not exist", field="team_id")
    if manager_id is not None:
        if manager_id == rep_id:
            raise UnprocessableInput("a rep cannot be their own manager", field="manager_id")
        await require_manager(session, manager_id, field="manager_id")
