"""The admin's settings: one router for the sub-pages (form sources, providers, outbound webhooks, rules,
users and API keys, audit log), each in its own ``settings_*`` module with one reason to change."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from hub.ui import (
    settings_accounts,
    settings_audit,
    settings_forms,
    settings_providers,
    settings_rules,
    settings_webhooks,
)
from hub.ui.auth import WebAdminDep
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render

router = APIRouter()


@router.get("/ui/settings", response_class=HTMLResponse)
async def settings_page(request: Request, _admin: WebAdminDep) -> Response:
    """The index of the settings pages."""
    return render(request, "ui/app/settings.html.j2", tabs=TABS, tab="")


for page in (settings_forms, settings_providers, settings_webhooks, settings_rules, settings_accounts, settings_audit):
    router.include_router(page.router)
