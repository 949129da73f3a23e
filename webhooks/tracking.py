"""The hub's own email tracking: open pixel, click redirect, and (RFC 8058 one-click) unsubscribe."""

from __future__ import annotations

import asyncio
import base64
import logging
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.deps import Runtime, RuntimeDep, request_session
from hub.email import service as email
from hub.email.tokens import read_click_token, read_open_token, read_unsubscribe_token
from hub.errors import UnsupportedMediaType
from webhooks.body import media_type, read_body
from webhooks.form_pages import templates

router = APIRouter(tags=["tracking"])
log = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""The 42-byte transparent 1x1 GIF."""
NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
PAGE_HEADERS = {
    **NO_CACHE,
    # One button that unsubscribes: never framed by another site (a click there would unsubscribe the person
    # unawares), no script, no sniffing, and the token in the URL never sent on in a Referer.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_MAX_UNSUBSCRIBE_BODY = 64 * 1024
_RECORD_BUDGET_SECONDS = 2.0
_SAFE_IN_LOCATION = "/:?#[]@!$&'()*+,;=%~-._"


# ``:path`` so that even a token mangled into several segments still gets its pixel.
@router.api_route("/t/o/{token:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def open_pixel(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """Always the pixel, whatever the token (mail clients show a broken image otherwise); a valid token
    records an open."""
    message_id = read_open_token(runtime.secret_key, token, runtime.secret_key_fallbacks)
    if message_id is not None:
        await _record(runtime, request, message_id, kind="opened")
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@router.api_route("/t/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def click_redirect(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """302 to the link the token signs, recording the click; an unsigned link is 404 (no open redirect)."""
    decoded = read_click_token(runtime.secret_key, token, runtime.secret_key_fallbacks)
    if decoded is None:
        return _invalid_link(request)
    message_id, url = decoded
    await _record(runtime, request, message_id, kind="clicked", url=url)
    # Non-ASCII in a Location header would not survive latin-1 encoding; percent-encode it.
    return RedirectResponse(quote(url, safe=_SAFE_IN_LOCATION), status_code=302, headers=NO_CACHE)


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_page(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """A confirmation page: a GET never unsubscribes, because link scanners follow every link."""
    decoded = read_unsubscribe_token(runtime.secret_key, token, runtime.secret_key_fallbacks)
    if decoded is None:
        return _invalid_link(request)
    page = templates(request).get_template("ui/unsubscribe.html.j2")
    action = f"{runtime.settings.public_url.rstrip('/')}/u/{token}"
    return HTMLResponse(page.render(done=False, email=decoded[1], action=action), headers=PAGE_HEADERS)


@router.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``, form-encoded or multipart, no cookies): the
    address goes on the suppression list. 200, never a redirect."""
    decoded = read_unsubscribe_token(runtime.secret_key, token, runtime.secret_key_fallbacks)
    if decoded is None:
        return _invalid_link(request)
    await read_body(request, _MAX_UNSUBSCRIBE_BODY)
    if media_type(request) not in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        raise UnsupportedMediaType("send List-Unsubscribe=One-Click as a form", field="content-type")
    message_id, address = decoded
    async with request_session(runtime) as session:
        await email.tracking_event(
            session,
            message_id,
            kind="unsubscribed",
            thresholds=email.thresholds_from(runtime.settings),
            user_agent=_header(request, "user-agent", 500),
            ip=request.client.host if request.client else None,
            method="POST",
            recipient=address,
            secret=lambda: runtime.secret_key,
        )
        await session.commit()
    runtime.metrics.count_webhook("email:hub", "accepted")
    page = templates(request).get_template("ui/unsubscribe.html.j2")
    return HTMLResponse(page.render(done=True, email=address, action=""), headers=PAGE_HEADERS)


async def _record(runtime: Runtime, request: Request, message_id: int, *, kind: str, url: str | None = None) -> None:
    """Best effort: the person gets their pixel or their page even when the database is down."""
    try:
        # Bounded like call routing: a person clicking a link must not wait on a stuck database.
        async with asyncio.timeout(_RECORD_BUDGET_SECONDS), request_session(runtime) as session:
            outcome = await email.tracking_event(
                session,
                message_id,
                kind=kind,
                thresholds=email.thresholds_from(runtime.settings),
                user_agent=_header(request, "user-agent", 500),
                ip=request.client.host if request.client else None,
                method=request.method,
                url=url,
                secret=lambda: runtime.secret_key,
            )
            await session.commit()
        runtime.metrics.count_webhook("email:hub", "accepted" if outcome else "unknown_message")
    except Exception as exc:  # a tracking hit is never worth a broken image or a failed click
        log.warning("could not record a %s of message %s: %s", kind, message_id, type(exc).__name__)
        runtime.metrics.count_webhook("email:hub", "failed")


def _header(request: Request, name: str, limit: int) -> str | None:
    value = request.headers.get(name)
    return value[:limit].replace("\x00", "") if value else None


def _invalid_link(request: Request) -> HTMLResponse:
    page = templates(request).get_template("ui/link_invalid.html.j2").render()
    return HTMLResponse(page, status_code=404, headers=NO_CACHE)
