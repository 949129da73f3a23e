"""The manager's page: routing queue, reps and their load, SLA breaches and escalations, and the report
panels (funnel, rep activity, plan vs fact, ABC/XYZ, losses), sliceable like the report API.

The page itself only validates the slice and lays out the panels; each panel is a partial loaded by
htmx (``hx-trigger="load"``), so the page answers fast and a slow report delays only its own panel.
Managers see their teams (the API's reach), admins everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.deps import Runtime, RuntimeDep, SessionDep
from hub.errors import HubError, NotFound
from hub.reps import repository as reps_repo
from hub.reps.visibility import Scope
from hub.ui import manager_panels as panels
from hub.ui import manager_queries as queries
from hub.ui.auth import WebManagerDep, WebScopeDep
from hub.ui.manager_slices import SUBJECTS, Slice, read_slice
from hub.ui.templating import render

router = APIRouter()
ABC_GROUPS = frozenset(a + x for a in panels.ABC_ROWS for x in panels.XYZ_COLUMNS)
Builder = Callable[[AsyncSession, Scope, Slice, Runtime], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Panel:
    """One lazily loaded section of the page."""

    title: str
    template: str
    build: Builder
    live: bool = False
    """Refreshed every minute (queue, load, deadlines change without anyone reloading)."""


async def _queue(session: AsyncSession, scope: Scope, _slice: Slice, _runtime: Runtime) -> dict[str, Any]:
    return {"rows": await queries.routing_queue(session, scope)}


async def _reps(session: AsyncSession, scope: Scope, _slice: Slice, _runtime: Runtime) -> dict[str, Any]:
    return {"rows": await queries.reps_with_load(session, scope)}


async def _sla(session: AsyncSession, _scope: Scope, slice_: Slice, _runtime: Runtime) -> dict[str, Any]:
    request = slice_.request
    return {
        "overdue": await queries.overdue_now(session, request, clock.now()),
        "breaches": await queries.breaches(session, request),
        "escalations": await queries.escalations(session, request),
        "listed": queries.LISTED,
    }


def _report(build: Callable[[AsyncSession, Slice, Runtime], Awaitable[dict[str, Any]]]) -> Builder:
    async def run(session: AsyncSession, _scope: Scope, slice_: Slice, runtime: Runtime) -> dict[str, Any]:
        return await build(session, slice_, runtime)

    return run


PANELS: dict[str, Panel] = {
    "queue": Panel("Routing queue (unassigned)", "manager_queue", _queue, live=True),
    "reps": Panel("Reps: status, capacity and load", "manager_reps", _reps, live=True),
    "sla": Panel("SLA breaches and escalations", "manager_sla", _sla, live=True),
    "funnel": Panel("Funnel", "manager_funnel", _report(panels.funnel_panel)),
    "activity": Panel("Rep activity", "manager_activity", _report(panels.activity_panel)),
    "plan": Panel("Plan vs fact", "manager_plan", _report(panels.plan_panel)),
    "abc": Panel("ABC/XYZ matrix (contacts by revenue)", "manager_abc", _report(panels.abc_panel)),
    "losses": Panel("Loss reasons", "manager_losses", _report(panels.losses_panel)),
}


def _partial(name: str) -> str:
    return f"ui/app/partials/{name}.html.j2"


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-History-Restore-Request")


@router.get("/ui/manager", response_class=HTMLResponse)
async def manager_page(
    request: Request, _user: WebManagerDep, scope: WebScopeDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """The page: slice controls, and a placeholder per panel that loads itself."""
    params = dict(request.query_params)
    context: dict[str, Any] = {"raw": params, "error": None, "panels": [], "query_text": ""}
    status = 200
    try:
        slice_ = await read_slice(session, scope, runtime, params)
        query_text = urlencode(slice_.query)
        context.update(
            query_text=query_text,
            panels=[
                (name, panel, f"/ui/manager/panels/{name}" + (f"?{query_text}" if query_text else ""))
                for name, panel in PANELS.items()
            ],
        )
    except HubError as error:
        status = error.status_code
        context["error"] = error
    context.update(await _choices(session, scope, runtime))
    return render(request, "ui/app/manager.html.j2", status_code=status, **context)


@router.get("/ui/manager/panels/{name}", response_class=HTMLResponse)
async def manager_panel(
    request: Request,
    name: str,
    _user: WebManagerDep,
    scope: WebScopeDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """One panel's content, for the slice in the query."""
    panel = PANELS.get(name)
    if panel is None:
        raise NotFound(f"no panel {name[:20]!r}", field="name")
    try:
        slice_ = await read_slice(session, scope, runtime, request.query_params)
        context = await panel.build(session, scope, slice_, runtime)
    except HubError as error:
        # Shown where the panel would be; htmx swaps only 2xx answers, a direct visit gets the real status.
        status = 200 if _is_htmx(request) else error.status_code
        return render(request, _partial("manager_error"), status_code=status, error=error, panel=panel)
    query_text = urlencode(slice_.query)
    return render(
        request,
        _partial(panel.template),
        panel=panel,
        slice=slice_,
        query_text=query_text,
        zone=_zone(slice_),
        **context,
    )


@router.get("/ui/manager/abc/{group}", response_class=HTMLResponse)
async def abc_group(
    request: Request,
    group: str,
    _user: WebManagerDep,
    scope: WebScopeDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """The contacts of one ABC/XYZ group (the grid's links), ranked by revenue."""
    if group not in ABC_GROUPS:
        raise NotFound(f"no group {group[:10]!r}; groups are AX to CZ", field="group")
    status = 200
    context: dict[str, Any] = {"group": group, "error": None, "items": [], "query_text": ""}
    try:
        slice_ = await read_slice(session, scope, runtime, request.query_params)
        report = (await panels.abc_panel(session, slice_, runtime, group=group))["report"]
        context.update(items=report.items, report=report, query_text=urlencode(slice_.query))
    except HubError as error:
        status, context["error"] = error.status_code, error
    name = "partials/manager_abc_items" if _is_htmx(request) else "manager_abc"
    return render(request, f"ui/app/{name}.html.j2", status_code=status, **context)


def _zone(slice_: Slice) -> str:
    return slice_.request.window.zone.key


async def _choices(session: AsyncSession, scope: Scope, runtime: Runtime) -> dict[str, Any]:
    """The slice form's options: reps and teams in reach, subjects, intervals."""
    reps = [r for r in await reps_repo.all_reps(session, active_only=False) if scope.sees_owner(r.id)]
    teams = await reps_repo.all_teams(session)
    if not scope.everything and scope.principal.rep_id is not None:
        managed = set(await reps_repo.teams_managed_by(session, scope.principal.rep_id))
        teams = [t for t in teams if t.id in managed]
    return {
        "reps": reps,
        "teams": teams,
        "subjects": SUBJECTS,
        "intervals": ("day", "week", "month"),
        "default_zone": runtime.settings.default_time_zone,
    }
