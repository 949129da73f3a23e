"""REST endpoint telling a caller who its key says it is."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from hub.deps import AnyRoleDep

router = APIRouter(prefix="/api", tags=["auth"])


class WhoAmI(BaseModel):
    """The key (or dashboard user) in use."""

    key_id: int | None
    user_id: int | None = None
    name: str
    role: str
    rep_id: int | None


@router.get("/me", response_model=WhoAmI)
async def who_am_i(principal: AnyRoleDep) -> WhoAmI:
    """The name, role and rep of the API key in use."""
    return WhoAmI(
        key_id=principal.key_id,
        name=principal.name,
        role=principal.role,
        rep_id=principal.rep_id,
        user_id=principal.user_id,
    )
