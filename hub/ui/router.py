"""Every dashboard page, under one router the app mounts (kept out of the OpenAPI schema)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from hub.ui import auth_pages, contact, imports, leads, live, manager, queue, sequences, settings


async def _wants_html(request: Request) -> None:
    # Errors raised while serving a page render as the dashboard's error page (hub/app.py), not as JSON.
    request.state.wants_html = True
    request.state.dashboard = True


router = APIRouter(include_in_schema=False, dependencies=[Depends(_wants_html)])
for page in (auth_pages, queue, contact, live, leads, manager, sequences, settings, imports):
    router.include_router(page.router)
