"""Who sees which leads: a rep their own, a manager their teams', admins and the head of sales everyone's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.service import Principal
from hub.deps import AnyRoleDep, RuntimeDep, SessionDep
from hub.reps import repository
from hub.reps.models import Rep


@dataclass(frozen=True)
class Scope:
    """The caller and the owners whose leads they may see (``rep_ids`` None: everyone's)."""

    principal: Principal
    rep_ids: frozenset[int] | None
    sees_unowned: bool

    @property
    def everything(self) -> bool:
        """True for admins and managers who see every lead."""
        return self.rep_ids is None

    def sees_owner(self, owner_rep_id: int | None) -> bool:
        """True when a lead owned by ``owner_rep_id`` (None: unassigned) is visible."""
        if owner_rep_id is None:
            return self.sees_unowned
        return self.rep_ids is None or owner_rep_id in self.rep_ids

    def owners(self) -> Collection[int] | None:
        """Owner ids to filter lists by (None: no filter)."""
        return self.rep_ids


def is_head_of_sales(email: str | None, head_of_sales: str | None) -> bool:
    """True when a rep's (normalised) email is the rules' ``routing.head_of_sales``: that rep sees every lead."""
    return bool(head_of_sales and email and email == head_of_sales.strip().lower())


async def scope_of(session: AsyncSession, principal: Principal, head_of_sales: str | None) -> Scope:
    """The caller's scope. A manager key linked to a rep sees the teams that rep leads and the reps
    reporting to them; a manager key with no rep, or the head of sales', sees everyone's."""
    if principal.role == "admin":
        return Scope(principal, None, sees_unowned=True)
    if principal.role == "rep":
        own = frozenset({principal.rep_id}) if principal.rep_id is not None else frozenset()
        return Scope(principal, own, sees_unowned=False)
    if principal.rep_id is None:
        return Scope(principal, None, sees_unowned=True)
    me = await repository.get(session, principal.rep_id)
    if me is None or is_head_of_sales(me.email, head_of_sales):
        return Scope(principal, None, sees_unowned=True)
    team_ids = await repository.teams_managed_by(session, me.id)
    members = await session.scalars(
        select(Rep.id).where((Rep.team_id.in_(team_ids or [0])) | (Rep.manager_id == me.id))
    )
    return Scope(principal, frozenset({me.id, *members}), sees_unowned=True)


async def get_scope(session: SessionDep, principal: AnyRoleDep, runtime: RuntimeDep) -> Scope:
    """The caller's scope, as a dependency."""
    return await scope_of(session, principal, runtime.rules.current.routing.head_of_sales)


ScopeDep = Annotated[Scope, Depends(get_scope)]
