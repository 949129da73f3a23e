"""Settings: the audit log, newest first, narrowed by action, actor or target, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.audit import service as audit
from hub.deps import SessionDep
from hub.pagination import decode_time_id_cursor, encode_cursor
from hub.ui.auth import WebAdminDep
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render
from hub.validation import SafeStr

router = APIRouter()
PAGE_SIZE = 50
Filter = Annotated[SafeStr | None, Query(max_length=200)]


@router.get("/ui/settings/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    session: SessionDep,
    _admin: WebAdminDep,
    action: Filter = None,
    actor: Filter = None,
    target_type: Filter = None,
    target_id: Filter = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Administrative actions: who changed rules, assigned, merged, erased, created keys and users."""
    filters = {
        "action": (action or "").strip() or None,
        "actor": (actor or "").strip() or None,
        "target_type": (target_type or "").strip() or None,
        "target_id": (target_id or "").strip() or None,
    }
    before = decode_time_id_cursor(cursor) if cursor else None
    found = await audit.newest(session, limit=PAGE_SIZE + 1, before=before, **filters)
    page = found[:PAGE_SIZE]
    next_cursor = encode_cursor([page[-1].at.isoformat(), page[-1].id]) if len(found) > PAGE_SIZE else None
    return render(
        request,
        "ui/app/settings_audit.html.j2",
        tabs=TABS,
        tab="audit",
        entries=page,
        filters={name: value or "" for name, value in filters.items()},
        next_cursor=next_cursor,
        paged=cursor is not None,
    )
