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

_UNIQUE_FIELDS = ("email", "phone", "client_identity")
CLIENT_PREFIX = "client:"


async def create_rep(session: AsyncSession, spec: RepCreate) -> Rep:
    """A new rep; email, phone and client identity are each one rep's."""
    values = spec.model_dump()
    await _refuse_taken(session, values, except_id=None)
    now = clock.now()
    return await repository.insert(session, Rep(**values, active=True, created_at=now, updated_at=now))


async def find_rep(session: AsyncSession, rep_id: int) -> Rep | None:
    """The rep with this id, if any."""
    return await repository.get(session, rep_id)


async def get_rep(session: AsyncSession, rep_id: int) -> Rep:
    """The rep, or 404 naming ``rep_id``."""
    rep = await repository.get(session, rep_id)
    if rep is None:
        raise NotFound(f"rep {rep_id} does not exist", field="rep_id")
    return rep


async def update_rep(session: AsyncSession, rep: Rep, changes: dict[str, Any]) -> Rep:
    """Apply edits; nulling ``name``, ``available`` or ``active`` is refused."""
    for required in ("name", "available", "active"):
        if required in changes and changes[required] is None:
            raise UnprocessableInput(f"{required} cannot be null", field=required)
    await _refuse_taken(session, changes, except_id=rep.id)
    for name, value in changes.items():
        setattr(rep, name, value)
    rep.updated_at = clock.now()
    await session.flush()
    return rep


async def list_reps(session: AsyncSession, *, include_inactive: bool = False) -> list[Rep]:
    """Reps, oldest first."""
    return await repository.all_reps(session, active_only=not include_inactive)


async def rep_for_endpoint(session: AsyncSession, *endpoints: str) -> Rep | None:
    """The rep behind a call endpoint: an E.164 number or ``client:<identity>``; first match wins."""
    phones = [e for e in endpoints if e.startswith("+")]
    identities = [e.removeprefix(CLIENT_PREFIX) for e in endpoints if e.startswith(CLIENT_PREFIX)]
    found = await repository.by_phone_or_identity(session, phones, identities)
    for endpoint in endpoints:
        for rep in found:
            if endpoint in (rep.phone, f"{CLIENT_PREFIX}{rep.client_identity}"):
                return rep
    return None


async def _refuse_taken(session: AsyncSession, values: dict[str, Any], *, except_id: int | None) -> None:
    # Two requests claiming the same phone at once would both pass the check below, and the second
    # would hit the unique constraint (a 500); taking the values' locks first makes it a 409.
    await lock_keys(session, [f"rep:{c}:{values[c]}" for c in _UNIQUE_FIELDS if values.get(c) is not None])
    for column in _UNIQUE_FIELDS:
        value = values.get(column)
        if value is not None and await repository.taken(session, column, value, except_id=except_id):
            raise Conflict(f"another rep already has this {column.replace('_', ' ')}", field=column)
