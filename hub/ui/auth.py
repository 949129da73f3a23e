"""Who is signed in to the dashboard: session cookie, role checks, CSRF; the web side of hub/accounts.

Every dashboard route takes ``WebUserDep`` (or a role-checking variant) and every state-changing one ``CsrfDep``.
A web user becomes a ``Principal`` with ``user_id`` set, so services and role rules (``hub/reps/visibility.py``)
treat it exactly as they treat an API key of the same role.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from hub.accounts import login, tokens
from hub.accounts.login import LoginPolicy
from hub.accounts.service import principal_of
from hub.auth.service import Principal, Role
from hub.deps import Runtime, RuntimeDep, SessionDep, runtime_of
from hub.errors import Forbidden
from hub.reps.visibility import Scope, scope_of
from hub.request_body import media_type, multipart_form, read_form

SESSION_COOKIE = "hub_session"
LOGIN_CSRF_COOKIE = "hub_login_csrf"
LOGIN_CSRF_MAX_AGE = 12 * 3600
"""A login page left open over a working day still signs in."""
HOME_BY_ROLE: dict[str, str] = {"rep": "/ui/queue", "manager": "/ui/manager", "admin": "/ui/manager"}
_NONCE = re.compile(r"^[A-Za-z0-9_-]{43}$")
FORM_MAX_FIELDS = 1000
"""Fields of one dashboard form: the sequence editor's, with every step and variant, is the longest."""
BACKGROUND_HEADER = "X-Hub-Background"
"""Sent (``1``) for the parts of a page that refresh themselves (``data-hub-background`` in the templates; set by
hub/static/app.js): answered while the session is good, but not the person at the screen, so it does not keep
the session alive (docs/ACCOUNTS.md)."""


def login_policy(runtime: Runtime) -> LoginPolicy:
    """Lockout and session lifetimes from the runtime's settings."""
    return LoginPolicy.from_settings(runtime.settings)


def home_of(principal: Principal) -> str:
    """Where a user lands after login: a rep's queue, a manager's or admin's overview."""
    return HOME_BY_ROLE.get(principal.role, "/ui/account")


def current_user(request: Request) -> Principal | None:
    """The signed-in user of this request, once ``WebUserDep`` ran (templates show it); None otherwise."""
    user: Principal | None = getattr(request.state, "user", None)
    return user


def session_token(request: Request) -> str | None:
    """The session token in the request's cookie if its signature holds (the session may still be over)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    runtime = runtime_of(request)
    max_age = runtime.settings.session_max_days * 86_400
    return tokens.unsign_session(
        runtime.secret_key, cookie, max_age_seconds=max_age, fallbacks=runtime.secret_key_fallbacks
    )


def _login_nonce(request: Request) -> str:
    existing = request.cookies.get(LOGIN_CSRF_COOKIE)
    if existing and _NONCE.match(existing):
        return existing
    minted: str | None = getattr(request.state, "new_login_nonce", None)
    if minted is None:
        minted = tokens.new_token()
        request.state.new_login_nonce = minted
    return minted


def csrf_token(request: Request) -> str:
    """The CSRF token forms and htmx send back: the session's once signed in, else the login form's."""
    return _csrf_under(runtime_of(request).secret_key, request)


def _csrf_under(secret: str, request: Request) -> str:
    token: str | None = getattr(request.state, "web_session_token", None)
    if token is not None:
        return tokens.csrf_for_session(secret, token)
    return tokens.csrf_for_login(secret, _login_nonce(request))


def login_csrf_ok(request: Request, presented: str | None) -> bool:
    """The login form's double submit: the field must match the pre-session cookie's nonce."""
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not nonce or not _NONCE.match(nonce):
        return False
    keys = runtime_of(request).accepted_keys
    return tokens.same_as_any(presented, (tokens.csrf_for_login(key, nonce) for key in keys))


def remember_login_nonce(request: Request, response: Response) -> None:
    """Set the pre-session CSRF cookie if this request minted its nonce."""
    minted: str | None = getattr(request.state, "new_login_nonce", None)
    if minted is not None:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            minted,
            max_age=LOGIN_CSRF_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path="/",
        )


def forget_login_nonce(request: Request, response: Response) -> None:
    """Drop the pre-session CSRF cookie (after a login, the session's token takes over)."""
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="lax")


def _secure(request: Request) -> bool:
    # Secure only over https, so `make run` on http://127.0.0.1:8000 can still sign in.
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """Give the browser its signed session cookie: HttpOnly, SameSite=Lax, Secure over https."""
    runtime = runtime_of(request)
    response.set_cookie(
        SESSION_COOKIE,
        tokens.sign_session(runtime.secret_key, token),
        max_age=runtime.settings.session_max_days * 86_400,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session cookie (the server-side session is revoked separately)."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="lax")


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (no scheme, no host, no ``//`` or ``\\`` tricks); None otherwise."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return None
    return target


def _login_required(request: Request) -> HTTPException:
    if request.headers.get("HX-Request"):
        # htmx swaps error bodies into the page; HX-Redirect makes it load the login page instead.
        return HTTPException(401, "sign in first", headers={"HX-Redirect": "/login"})
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "sign in first", headers={"Location": f"/login?next={quote(here, safe='')}"})


async def optional_web_user(request: Request, session: SessionDep, runtime: RuntimeDep) -> Principal | None:
    """The signed-in user, or None without a working session (the login page and ``/ui/`` ask this)."""
    return await signed_in_user(request, session, runtime, touch=request.headers.get(BACKGROUND_HEADER) != "1")


async def signed_in_user(request: Request, session: AsyncSession, runtime: Runtime, *, touch: bool) -> Principal | None:
    """As ``optional_web_user``; ``touch=False`` for a request the page makes by itself (it does not count as
    use: ``last_seen_at`` stays, so the session still goes idle)."""
    token = session_token(request)
    active = await login.active_session(session, token, login_policy(runtime), touch=touch) if token else None
    if active is None or token is None:
        return None
    if active.touched:
        await session.commit()  # last_seen_at: kept even when the page itself writes nothing
    principal = principal_of(active.user)
    request.state.user = principal
    request.state.web_session_token = token
    request.state.web_session_id = active.row.id
    return principal


OptionalWebUserDep = Annotated[Principal | None, Depends(optional_web_user)]


async def get_web_user(request: Request, user: OptionalWebUserDep) -> Principal:
    """The signed-in user; without a working session, a redirect to the login page (401 for htmx)."""
    if user is None:
        raise _login_required(request)
    return user


WebUserDep = Annotated[Principal, Depends(get_web_user)]


def web_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency letting only these roles through; others get a 403 page."""

    async def check(user: WebUserDep) -> Principal:
        if user.role not in roles:
            raise Forbidden(f"this page is for {' or '.join(roles)} users; you are signed in as {user.role}")
        return user

    return check


WebManagerDep = Annotated[Principal, Depends(web_role("admin", "manager"))]
WebAdminDep = Annotated[Principal, Depends(web_role("admin"))]


async def get_web_scope(session: SessionDep, user: WebUserDep, runtime: RuntimeDep) -> Scope:
    """Whose leads the signed-in user sees: the same Scope an API key of the same role gets."""
    return await scope_of(session, user, runtime.rules.current.routing.head_of_sales)


WebScopeDep = Annotated[Scope, Depends(get_web_scope)]


async def _presented_csrf(request: Request) -> str | None:
    kind = media_type(request)
    form: FormData | None = None
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # Read here within HUB_MAX_BODY_BYTES and without files, even when the header carries the token: the route's
        # own ``await request.form()`` then gets this form back instead of reading the body with Starlette's
        # defaults (any number of parts, files spooled at any size). An upload route reads its multipart body under
        # its own limits first (hub.request_body.read_multipart, in a dependency before this one): that form is used.
        limit = runtime_of(request).settings.max_body_bytes
        form = multipart_form(request) or await read_form(
            request, max_bytes=limit, max_fields=FORM_MAX_FIELDS, max_part_size=limit
        )
    header = request.headers.get("X-CSRF-Token")
    if header:
        return header
    value = form.get("csrf_token") if form is not None else None
    return value if isinstance(value, str) else None


async def check_csrf(request: Request, user: WebUserDep) -> Principal:
    """Refuse a state-changing request whose CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``)
    is not the session's: a page on another site cannot make a signed-in browser change anything."""
    presented = await _presented_csrf(request)
    # A page rendered before a key rotation carries a token derived from the retired key.
    expected = (_csrf_under(key, request) for key in runtime_of(request).accepted_keys)
    if not tokens.same_as_any(presented, expected):
        raise Forbidden(
            "the form is out of date or did not come from the hub (CSRF check failed); reload the page and retry",
            field="csrf_token",
        )
    return user


CsrfDep = Annotated[Principal, Depends(check_csrf)]
"""Take it on every POST/PUT/PATCH/DELETE dashboard route; it also gives the signed-in user."""
