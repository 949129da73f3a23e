"""Rendering dashboard pages: one jinja2 environment and the globals every page template can rely on.

Page templates extend ``ui/app/layout.html.j2``; handlers call :func:`render` and never build
their own environment, so the layout always gets the user, the CSRF token, the navigation and
the security headers.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hub import clock
from hub.auth.service import Principal
from hub.config import static_dir, templates_dir
from hub.ui.auth import csrf_token, current_user

# Scripts only from our own origin (no inline script, no eval), so an injected tag cannot run.
# Inline style attributes stay allowed: page templates use them for bar widths and the like.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry personal data and a CSRF token
}


@dataclass(frozen=True)
class NavLink:
    """One entry of the top navigation."""

    label: str
    href: str


# Who sees which page; the pages themselves enforce the same roles (hub/ui/auth.py).
_NAV: tuple[tuple[NavLink, frozenset[str]], ...] = (
    (NavLink("My queue", "/ui/queue"), frozenset({"rep", "manager", "admin"})),
    (NavLink("Leads", "/ui/leads"), frozenset({"rep", "manager", "admin"})),
    (NavLink("Manager", "/ui/manager"), frozenset({"manager", "admin"})),
    (NavLink("Sequences", "/ui/sequences"), frozenset({"manager", "admin"})),
    (NavLink("Import", "/ui/imports"), frozenset({"manager", "admin"})),
    (NavLink("Settings", "/ui/settings"), frozenset({"admin"})),
)


def nav_for(user: Principal | None) -> list[NavLink]:
    """The navigation links this user's role may follow (none before login)."""
    if user is None:
        return []
    return [link for link, roles in _NAV if user.role in roles]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a dashboard template (``ui/app/...``) as a page with the dashboard's security headers.

    ``user`` defaults to the Principal the login dependency stored on the request; pass it
    explicitly to override (the login page passes ``user=None``).
    """
    user = context.pop("user", current_user(request))
    values = {
        "request": request,
        "user": user,
        "csrf_token": csrf_token(request),
        "nav": nav_for(user),
        "current_path": request.url.path,
        **context,
    }
    html = environment().get_template(name).render(values)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def render_fragment(name: str, **context: Any) -> str:
    """Render a partial (an htmx swap target or an SSE message) to a string, with the same globals."""
    return environment().get_template(name).render(context)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The dashboard's jinja2 environment (autoescaped; undefined names are errors, not blank text)."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static=static, now=clock.now, tz=to_zone, lenient=lenient)
    env.filters.update(localtime=format_local, isoformat=_isoformat)
    return env


def static(path: str) -> str:
    """The URL of a file under hub/static/, with a content hash so a new release is not served stale."""
    return f"/static/{path}?v={_static_version(path)}"


@lru_cache(maxsize=256)
def _static_version(path: str) -> str:
    target = (static_dir() / path).resolve()
    if not target.is_relative_to(static_dir().resolve()) or not target.is_file():
        return "0"
    return hashlib.sha256(target.read_bytes()).hexdigest()[:10]


def lenient(data: dict[str, Any] | None) -> defaultdict[str, Any]:
    """A free-form payload (a timeline entry's data) where a missing key reads as None, not an error."""
    return defaultdict(lambda: None, data or {})


def to_zone(moment: datetime | None, zone: str | None) -> datetime | None:
    """``moment`` in the IANA zone ``zone`` (UTC when the zone is missing or unknown)."""
    if moment is None:
        return None
    try:
        info = ZoneInfo(zone) if zone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        info = ZoneInfo("UTC")
    return moment.astimezone(info)


def format_local(moment: datetime | str | None, zone: str | None = None, fmt: str = "%a %d %b %H:%M %Z") -> str:
    """A time as people in ``zone`` read it, e.g. ``Tue 24 Nov 09:30 EST``; an em dash for no time.

    ``moment`` may also be ISO text, as times are kept in timeline payloads (without an offset: UTC, as
    every stored time is); text that is not a time is shown as it is.
    """
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return moment
        moment = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    local = to_zone(moment, zone)
    return "—" if local is None else local.strftime(fmt)


def _isoformat(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()
