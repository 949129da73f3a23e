"""Settings: outbound webhook endpoints (list, create, enable/disable, test) and each one's delivery log with retry.

The same use cases as ``/api/webhook-endpoints`` (hub.outbound.service) and the same input checks
(hub.outbound.schemas); a new endpoint's signing secret is shown this once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hub.deps import RuntimeDep, SessionDep
from hub.errors import HubError
from hub.outbound import service as endpoints
from hub.outbound.publish import ALL, EVENT_TYPES
from hub.outbound.schemas import EndpointCreate
from hub.ui.auth import CsrfDep, WebAdminDep
from hub.ui.form_errors import Errors, errors_of
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render
from hub.validation import MAX_ID

router = APIRouter()
IdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]
PAGE_SIZE = 50


@router.get("/ui/settings/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request, session: SessionDep, _admin: WebAdminDep) -> Response:
    """Every endpoint with its state, and the form to add one."""
    return await _page(request, session)


@router.post("/ui/settings/webhooks", response_class=HTMLResponse)
async def create_endpoint(
    request: Request, session: SessionDep, runtime: RuntimeDep, admin: WebAdminDep, _csrf: CsrfDep
) -> Response:
    """Subscribe a URL; its ``whsec_`` secret is shown this once."""
    form = await request.form()
    values = {
        "url": str(form.get("url") or "").strip(),
        "description": str(form.get("description") or "").strip(),
        "format": str(form.get("format") or "standard"),
        "event_types": [str(v) for v in form.getlist("event_types")],
    }
    try:
        spec = EndpointCreate(
            url=values["url"],
            description=values["description"] or None,
            format=values["format"],
            event_types=values["event_types"],
        )
        endpoint, secret = await endpoints.create_endpoint(session, spec, runtime.box, actor=admin.actor)
    except ValidationError as exc:
        return await _page(request, session, values=values, errors=errors_of(exc), status_code=422)
    except HubError as exc:
        await session.rollback()
        return await _page(request, session, values=values, errors={exc.field or "": [exc.message]}, status_code=422)
    await session.commit()
    return await _page(request, session, created=endpoint.id, secret=secret)


@router.post("/ui/settings/webhooks/{endpoint_id}/enable")
async def enable_endpoint(endpoint_id: IdPath, session: SessionDep, admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Send to this endpoint again."""
    endpoint = await endpoints.get_endpoint(session, endpoint_id, lock=True)
    await endpoints.update_endpoint(session, endpoint, {"enabled": True}, actor=admin.actor)
    await session.commit()
    return RedirectResponse("/ui/settings/webhooks", status_code=303)


@router.post("/ui/settings/webhooks/{endpoint_id}/disable")
async def disable_endpoint(endpoint_id: IdPath, session: SessionDep, admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Stop sending to this endpoint (pending deliveries are cancelled)."""
    endpoint = await endpoints.get_endpoint(session, endpoint_id, lock=True)
    await endpoints.update_endpoint(session, endpoint, {"enabled": False}, actor=admin.actor)
    await session.commit()
    return RedirectResponse("/ui/settings/webhooks", status_code=303)


@router.post("/ui/settings/webhooks/{endpoint_id}/test")
async def test_endpoint(endpoint_id: IdPath, session: SessionDep, _admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Queue a ``ping`` to this endpoint; its delivery log shows the outcome."""
    await endpoints.queue_test(session, await endpoints.get_endpoint(session, endpoint_id))
    await session.commit()
    return RedirectResponse(f"/ui/settings/webhooks/{endpoint_id}?tested=1", status_code=303)


@router.get("/ui/settings/webhooks/{endpoint_id}", response_class=HTMLResponse)
async def deliveries_page(
    endpoint_id: IdPath,
    request: Request,
    session: SessionDep,
    _admin: WebAdminDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """An endpoint's deliveries, newest first, each with its attempts; paged by ``before`` (a delivery id)."""
    endpoint = await endpoints.get_endpoint(session, endpoint_id)
    found = await endpoints.deliveries_of(session, endpoint_id, status=None, limit=PAGE_SIZE + 1, before_id=before)
    page = found[:PAGE_SIZE]
    return render(
        request,
        "ui/app/settings_webhook.html.j2",
        tabs=TABS,
        tab="webhooks",
        endpoint=endpoint,
        deliveries=page,
        next_before=page[-1].id if len(found) > PAGE_SIZE else None,
        tested=request.query_params.get("tested") == "1",
        retried=request.query_params.get("retried", "")[:20],
    )


@router.post("/ui/settings/webhook-deliveries/{delivery_id}/retry")
async def retry_delivery(delivery_id: IdPath, session: SessionDep, _admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Make a delivery due now (same ``webhook-id``, so the receiver can tell it is the same event)."""
    delivery = await endpoints.retry_delivery(session, delivery_id)
    await session.commit()
    return RedirectResponse(f"/ui/settings/webhooks/{delivery.endpoint_id}?retried={delivery.id}", status_code=303)


async def _page(
    request: Request,
    session: SessionDep,
    *,
    values: Mapping[str, object] | None = None,
    errors: Errors | None = None,
    created: int | None = None,
    secret: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "ui/app/settings_webhooks.html.j2",
        status_code=status_code,
        tabs=TABS,
        tab="webhooks",
        endpoints=await endpoints.list_endpoints(session),
        event_types=[ALL, *sorted(EVENT_TYPES)],
        values=values or {"url": "", "description": "", "format": "standard", "event_types": []},
        errors=errors or {},
        created=created,
        secret=secret,
    )
