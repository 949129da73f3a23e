"""REST endpoints for the rules file: what is in force, and reloading it on demand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hub.deps import AdminDep, AnyRoleDep, RuntimeDep, SessionDep
from hub.policy.loader import RulesError, RulesInvalid
from hub.policy.reload import reload_recorded
from hub.policy.schemas import RulesFile
from hub.policy.store import RulesStore

router = APIRouter(prefix="/api/rules", tags=["rules"])


class RuleProblemOut(BaseModel):
    """One mistake in the rules file."""

    origin: str
    line: int | None
    column: int | None
    field: str | None
    message: str


class ReloadErrorOut(BaseModel):
    """Why the newest edit of the file was not taken (the previous rules stay in force)."""

    message: str
    problems: list[RuleProblemOut]


class RulesOut(BaseModel):
    """The rules in force and where they came from."""

    path: str
    digest: str
    """sha256 (hex) of the file the rules were read from."""
    version: int
    """Counts successful loads in this process, starting at 1."""
    loaded_at: datetime
    reload_error: ReloadErrorOut | None
    """The last failed reload, until a later one succeeds."""
    rules: RulesFile


class RulesInvalidOut(BaseModel):
    """The 422 body of a refused reload."""

    error: str = "RulesInvalid"
    message: str
    field: str | None = None
    problems: list[RuleProblemOut]


def _problems(error: RulesError) -> list[RuleProblemOut]:
    return [RuleProblemOut.model_validate(problem) for problem in error.as_dicts()]


def _rules_out(store: RulesStore, rules: RulesFile) -> RulesOut:
    error = store.last_error
    return RulesOut(
        path=str(store.path),
        digest=store.digest,
        version=store.version,
        loaded_at=store.loaded_at,
        reload_error=None if error is None else ReloadErrorOut(message=error.summary, problems=_problems(error)),
        rules=rules,
    )


@router.get("", response_model=RulesOut)
async def read_rules(runtime: RuntimeDep, _principal: AnyRoleDep) -> RulesOut:
    """The rules in force (picking up a saved change first), with the last reload error if any."""
    store = runtime.rules
    return _rules_out(store, store.current)


@router.post("/reload", response_model=RulesOut, responses={422: {"model": RulesInvalidOut}})
async def reload_rules(runtime: RuntimeDep, session: SessionDep, principal: AdminDep) -> Any:
    """Re-read the rules file now (admins); a broken file is refused and the previous rules kept."""
    store = runtime.rules
    try:
        rules = reload_recorded(session, store, actor=principal.actor)
    except RulesError as exc:
        # The app's HubError handler sends message and field only; the problems list is the point here.
        invalid = RulesInvalid(exc)
        body: dict[str, Any] = {"error": type(invalid).__name__, "message": invalid.message, "field": invalid.field}
        return JSONResponse({**body, "problems": invalid.problems}, status_code=invalid.status_code)
    await session.commit()
    return _rules_out(store, rules)
