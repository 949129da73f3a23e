"""The leads list: filter, sort, page, bulk assign (managers), CSV export of the current filter.

Filters live in the URL (a GET form, so a view can be bookmarked or shared); htmx swaps only the table
when they change. Bulk assignment is a plain POST form (works without JavaScript) that redirects back
to the same view.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.deps import Runtime, RuntimeDep, SessionDep
from hub.errors import HubError
from hub.reports.csv_export import csv_response
from hub.reps import repository as reps_repo
from hub.reps.models import Rep
from hub.reps.visibility import Scope
from hub.routing.leads_api import LeadOut
from hub.tasks.zones import viewer_zone
from hub.ui.auth import CsrfDep, WebManagerDep, WebScopeDep
from hub.ui.leads_assign import assign_leads, parse_ids
from hub.ui.leads_list import SORT_LABELS, LeadFilters, LeadPage, every_lead, lead_page, leads_statement, parse_filters
from hub.ui.templating import render
from hub.validation import parse_id

router = APIRouter()
PAGE = "ui/app/leads.html.j2"
TABLE = "ui/app/partials/leads_table.html.j2"


async def _reps_in_reach(session: AsyncSession, scope: Scope) -> list[Rep]:
    """Active reps the caller may filter by and assign to."""
    return [r for r in await reps_repo.all_reps(session, active_only=True) if scope.sees_owner(r.id)]


async def _zone(session: AsyncSession, scope: Scope, runtime: Runtime) -> ZoneInfo:
    """The viewer's zone (their rep's, as on the queue and contact pages): times and the created-on days."""
    return ZoneInfo(await viewer_zone(session, scope.principal.rep_id, runtime.settings))


@router.get("/ui/leads", response_class=HTMLResponse)
async def leads_page(request: Request, scope: WebScopeDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    """The filtered, sorted page of leads (only the table for an htmx request)."""
    raw = dict(request.query_params)
    zone = await _zone(session, scope, runtime)
    context: dict[str, Any] = {"raw": raw, "error": None}
    status = 200
    try:
        filters = parse_filters(raw)
        context["listing"] = await lead_page(session, filters, scope, runtime.rules.current, clock.now(), zone)
    except HubError as error:
        filters, status = LeadFilters(), error.status_code
        context.update(error=error, listing=LeadPage([], 0, 1, 1))
    context.update(await _view(session, scope, runtime, filters, zone))
    context["notice"] = _notice(raw, context["rep_names"])
    if _wants_table(request):
        # htmx only swaps 2xx answers: the table carries the inline error, the full page the honest status.
        return render(request, TABLE, **context)
    return render(request, PAGE, status_code=status, **context)


@router.get("/ui/leads/export.csv")
async def export_leads(request: Request, scope: WebScopeDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Every lead of the current filter (all pages) as a streamed CSV; text cells cannot run as formulas."""
    filters = parse_filters(dict(request.query_params))
    now = clock.now()
    # Built (and so validated) before the first byte goes out: a bad filter is a 422, not a broken file.
    stmt = leads_statement(filters, scope, runtime.rules.current, now, await _zone(session, scope, runtime))
    stamp = now.strftime("%Y%m%d-%H%M")
    return csv_response(
        LeadOut, every_lead(session, stmt, now), filename=f"leads-{stamp}", currency=runtime.settings.default_currency
    )


@router.post("/ui/leads/assign", response_class=HTMLResponse)
async def bulk_assign(
    request: Request,
    _manager: WebManagerDep,
    _csrf: CsrfDep,
    scope: WebScopeDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """Give the selected leads to one rep (all or none), then show the same list again."""
    form = await request.form()
    back = _return_query(str(form.get("return_to") or ""))
    try:
        [rep_id] = parse_ids([str(form.get("rep_id") or "")], "rep_id")
        contact_ids = parse_ids([str(v) for v in form.getlist("contact_ids")], "contact_ids")
        done = await assign_leads(session, scope, contact_ids, rep_id, runtime.rules.current, clock.now())
        await session.commit()
    except HubError as error:
        await session.rollback()
        filters = parse_filters(back)
        zone = await _zone(session, scope, runtime)
        listing = await lead_page(session, filters, scope, runtime.rules.current, clock.now(), zone)
        context = {"raw": back, "error": error, "notice": None, "listing": listing}
        context.update(await _view(session, scope, runtime, filters, zone))
        return render(request, PAGE, status_code=error.status_code, **context)
    query = back | {"assigned": str(len(done.assigned)), "to": str(done.rep_id)}
    return RedirectResponse(f"/ui/leads?{urlencode(query)}", status_code=303)


def _wants_table(request: Request) -> bool:
    """An htmx swap of the table (not a boosted link or a history restore, which need the whole page)."""
    headers = request.headers
    return (
        bool(headers.get("HX-Request"))
        and not headers.get("HX-Boosted")
        and not headers.get("HX-History-Restore-Request")
    )


def _return_query(text: str) -> dict[str, str]:
    """The list's filters from the form's ``return_to`` (query text), kept to the known, valid ones."""
    try:
        return parse_filters(dict(parse_qsl(text.lstrip("?")))).query()
    except HubError:
        return {}


def _notice(raw: dict[str, str], rep_names: dict[int, str]) -> str | None:
    """The confirmation after a bulk assignment's redirect (the rep named from the database, not the URL)."""
    assigned, rep_id = raw.get("assigned", ""), parse_id(raw.get("to", ""))
    if not (assigned.isascii() and assigned.isdigit() and len(assigned) <= 6) or rep_id not in rep_names:
        return None
    return f"{assigned} lead{'s' if assigned != '1' else ''} assigned to {rep_names[rep_id]}."


async def _view(
    session: AsyncSession, scope: Scope, runtime: Runtime, filters: LeadFilters, zone: ZoneInfo
) -> dict[str, Any]:
    """What the form and table need besides the rows: choices, names, links."""
    reps = await _reps_in_reach(session, scope)
    query = filters.query()

    def url(**changes: Any) -> str:
        return "/ui/leads?" + urlencode(filters.query(**changes))

    return {
        "filters": filters,
        "reps": reps,
        "rep_names": {r.id: r.name for r in reps},
        "stages": runtime.rules.current.pipeline.names,
        "sort_labels": SORT_LABELS,
        "can_assign": scope.principal.role in ("manager", "admin"),
        "url": url,
        "query_text": urlencode(query),
        "export_url": "/ui/leads/export.csv" + (f"?{urlencode(query)}" if query else ""),
        "zone": zone.key,
        "as_of": clock.now(),
    }
