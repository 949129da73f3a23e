"""REST endpoints for reps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from hub.deps import AnyRoleDep, ManagerDep, SessionDep
from hub.errors import Forbidden
from hub.reps import service as reps
from hub.reps.schemas import RepCreate, RepOut, RepPatch
from hub.validation import MAX_ID

router = APIRouter(prefix="/api/reps", tags=["reps"])
RepIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=list[RepOut])
async def list_reps(
    session: SessionDep,
    _principal: AnyRoleDep,
    include_inactive: Annotated[bool, Query(description="also reps who left")] = False,
) -> list[RepOut]:
    """Every rep, oldest first."""
    return [RepOut.of(r) for r in await reps.list_reps(session, include_inactive=include_inactive)]


@router.post("", response_model=RepOut, status_code=201)
async def create_rep(spec: RepCreate, session: SessionDep, _principal: ManagerDep) -> RepOut:
    """Add a rep (managers and admins)."""
    rep = await reps.create_rep(session, spec)
    await session.commit()
    return RepOut.of(rep)


@router.get("/{rep_id}", response_model=RepOut)
async def read_rep(rep_id: RepIdPath, session: SessionDep, _principal: AnyRoleDep) -> RepOut:
    """One rep."""
    return RepOut.of(await reps.get_rep(session, rep_id))


@router.patch("/{rep_id}", response_model=RepOut)
async def update_rep(rep_id: RepIdPath, patch: RepPatch, session: SessionDep, principal: AnyRoleDep) -> RepOut:
    """Edit a rep; reps may only switch their own availability (e.g. away from the phone)."""
    changes = patch.model_dump(exclude_unset=True)
    if principal.role == "rep" and (principal.rep_id != rep_id or set(changes) - {"available"}):
        raise Forbidden("a rep may only change their own availability", field="available")
    rep = await reps.update_rep(session, await reps.get_rep(session, rep_id), changes)
    await session.commit()
    return RepOut.of(rep)
