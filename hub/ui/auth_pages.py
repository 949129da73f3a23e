"""Login, logout and the account page (own sessions, password change, log out everywhere)."""

from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hub.accounts import login, passwords
from hub.accounts import service as accounts
from hub.accounts.models import User
from hub.audit import service as audit
from hub.auth.service import Principal
from hub.deps import RuntimeDep, SessionDep
from hub.errors import Forbidden, RateLimited, UnprocessableInput
from hub.request_body import read_form
from hub.ui.auth import (
    CsrfDep,
    OptionalWebUserDep,
    WebUserDep,
    clear_session_cookie,
    forget_login_nonce,
    home_of,
    login_csrf_ok,
    login_policy,
    remember_login_nonce,
    safe_next,
    session_token,
    set_session_cookie,
)
from hub.ui.templating import render

log = logging.getLogger(__name__)
router = APIRouter()

LOGIN_WINDOW_SECONDS = 60
REFUSED = "Wrong email or password, or the account is locked or disabled."
"""One answer for every refusal, so the form does not tell who has an account."""
MAX_EMAIL = 254
WRONG_CURRENT = "the current password is not right"
LOCKED = "the account is locked after too many wrong passwords; try again later"
LOGIN_MAX_FIELDS = 8
"""The login form has four fields (email, password, csrf_token, next); a few more are tolerated, not 1,000."""
LOGIN_FIELD_BYTES = 16 * 1024
"""The longest field as sent: a password of passwords.MAX_LENGTH characters, each percent-encoded in at most
12 bytes, is 12 KB."""
IPV6_CLIENT_PREFIX = 64
"""An IPv6 client holds a whole /64 (RFC 6177) and can pick any address in it: the login limit counts the network."""


def _user_id(user: Principal) -> int:
    # WebUserDep only yields dashboard users, which always have one; an API key's principal never gets here.
    if user.user_id is None:
        raise Forbidden("this page is for dashboard users")
    return user.user_id


def _form_text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _login_page(
    request: Request, *, status_code: int, next_path: str | None, email: str = "", error: str | None = None
) -> Response:
    response = render(
        request,
        "ui/app/login.html.j2",
        status_code=status_code,
        user=None,
        next=next_path or "",
        email=email,
        error=error,
    )
    remember_login_nonce(request, response)
    return response


@router.get("/")
async def root() -> RedirectResponse:
    """The hub's front door: the dashboard."""
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui")
@router.get("/ui/")
async def dashboard_home(user: OptionalWebUserDep) -> RedirectResponse:
    """The signed-in user's home page by role, or the login page."""
    return RedirectResponse(home_of(user) if user else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request, user: OptionalWebUserDep, next: str | None = None) -> Response:
    """The login form (already signed in: straight on to where the user was going)."""
    target = safe_next(next)
    if user is not None:
        return RedirectResponse(target or home_of(user), status_code=303)
    return _login_page(request, status_code=200, next_path=target)


@router.post("/login")
async def login_submit(request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Check the password, start a session, set its cookie and go on to ``next`` or the role's home page."""
    client = request.client.host if request.client else "unknown"
    retry = await runtime.rate_limiter.hit(
        _login_rate_key(client), limit=runtime.settings.login_rate_per_ip, window_seconds=LOGIN_WINDOW_SECONDS
    )
    if retry is not None:
        raise RateLimited(f"too many login attempts from this address; try again in {retry} seconds", retry_after=retry)
    form = await read_form(
        request,
        max_bytes=runtime.settings.max_body_bytes,
        max_fields=LOGIN_MAX_FIELDS,
        max_part_size=LOGIN_FIELD_BYTES,
    )
    next_path = safe_next(_form_text(form.get("next"), 2000))
    email = _form_text(form.get("email"), MAX_EMAIL + 1)
    if not login_csrf_ok(request, _form_text(form.get("csrf_token"), 200)):
        error = "The login form expired or did not come from the hub. Please try again."
        return _login_page(request, status_code=403, next_path=next_path, email=email[:MAX_EMAIL], error=error)
    password = _form_text(form.get("password"), passwords.MAX_LENGTH + 1)
    policy = login_policy(runtime)
    user = await login.check_password(session, email, password, policy) if len(email) <= MAX_EMAIL else None
    if user is None:
        await session.commit()  # the failed attempt counts towards the lockout
        log.info("dashboard login refused")
        return _login_page(request, status_code=401, next_path=next_path, email=email[:MAX_EMAIL], error=REFUSED)
    previous = session_token(request)
    if previous is not None:
        await login.end_session(session, previous)  # never keep a session from before the login (fixation)
    token = await login.start_session(session, user, user_agent=request.headers.get("user-agent"), policy=policy)
    await session.commit()
    log.info("dashboard login: user %d (%s)", user.id, user.role)
    principal = accounts.principal_of(user)
    response = RedirectResponse(next_path or home_of(principal), status_code=303)
    set_session_cookie(request, response, token)
    forget_login_nonce(request, response)
    return response


def _login_rate_key(host: str) -> str:
    """The login limit's key for a client: an IPv4 address, or the /64 an IPv6 address is in."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id (``fe80::1%eth0``) is no part of it
    except ValueError:
        return f"login:{host}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ``::ffff:192.0.2.1`` is that IPv4 client, not a network of its own
    if isinstance(address, ipaddress.IPv6Address):
        return f"login:{ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)}"
    return f"login:{address}"


@router.post("/logout")
async def logout(request: Request, session: SessionDep, user: CsrfDep) -> RedirectResponse:
    """End this browser's session."""
    response = await _signed_out(request, session)
    log.info("dashboard logout: user %s", user.user_id)
    return response


async def _signed_out(request: Request, session: SessionDep) -> RedirectResponse:
    """End this browser's session (committed with whatever the request wrote), and send it to the login form."""
    token = session_token(request)
    if token is not None:
        await login.end_session(session, token)
    await session.commit()
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


async def _account_page(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user_id: int,
    *,
    status_code: int = 200,
    message: str | None = None,
    error: str | None = None,
    error_field: str | None = None,
) -> Response:
    account = await accounts.get_user(session, user_id)
    open_sessions = await login.open_sessions(session, user_id, login_policy(runtime))
    return render(
        request,
        "ui/app/account.html.j2",
        status_code=status_code,
        account=account,
        sessions=open_sessions,
        current_session_id=getattr(request.state, "web_session_id", None),
        message=message,
        error=error,
        error_field=error_field,
        min_password=passwords.MIN_LENGTH,
    )


@router.get("/ui/account")
async def account_page(request: Request, session: SessionDep, runtime: RuntimeDep, user: WebUserDep) -> Response:
    """The signed-in user's account: who they are, where they are signed in, password, log out everywhere."""
    return await _account_page(request, session, runtime, _user_id(user))


@router.post("/ui/account/logout-everywhere")
async def account_logout_everywhere(request: Request, session: SessionDep, user: CsrfDep) -> RedirectResponse:
    """End every session of the signed-in user, this one included (a lost phone, a shared computer)."""
    ended = await accounts.logout_everywhere(session, _user_id(user), actor=user.actor)
    await session.commit()
    log.info("dashboard logout everywhere: user %s, %d sessions", user.user_id, ended)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


@router.post("/ui/account/password")
async def account_password(request: Request, session: SessionDep, runtime: RuntimeDep, user: CsrfDep) -> Response:
    """Change one's own password; other sessions end, this one stays. Wrong current passwords count towards
    the login's lockout, and the one that locks the account ends this session."""
    user_id = _user_id(user)
    form = await request.form()
    current = _form_text(form.get("current_password"), passwords.MAX_LENGTH + 1)
    new = _form_text(form.get("new_password"), passwords.MAX_LENGTH + 1)
    again = _form_text(form.get("new_password_again"), passwords.MAX_LENGTH + 1)
    account = await accounts.get_user(session, user_id)
    if login.is_locked(account):  # as at the login form: while the lock holds, no password is right
        problem: UnprocessableInput | None = UnprocessableInput(LOCKED, field="current_password")
    else:
        verdict = await login.check_own_password(session, account, current, login_policy(runtime))
        if verdict == "locked":
            return await _end_locked_session(request, session, account)
        wrong = UnprocessableInput(WRONG_CURRENT, field="current_password")
        problem = wrong if verdict == "wrong" else _new_password_problem(new, again)
    if problem is not None:
        await session.commit()  # a wrong current password counts towards the lockout
        return await _account_page(
            request, session, runtime, user_id, status_code=422, error=problem.message, error_field=problem.field
        )
    await _change_password(session, request, account, new, actor=user.actor)
    await session.commit()
    return await _account_page(
        request, session, runtime, user_id, message="Password changed; your other sessions ended."
    )


async def _end_locked_session(request: Request, session: SessionDep, account: User) -> RedirectResponse:
    # Whoever guessed here holds a session, not the password: ending it leaves them the login form, which
    # refuses everyone while the lock holds. The lock itself is audited (``user.locked``).
    response = await _signed_out(request, session)
    log.info("account page: user %d locked by wrong current passwords; session ended", account.id)
    return response


def _new_password_problem(new: str, again: str) -> UnprocessableInput | None:
    if new != again:
        return UnprocessableInput("the two new passwords differ", field="new_password_again")
    try:
        accounts.check_password_rules(new)
    except UnprocessableInput as exc:
        return UnprocessableInput(exc.message.replace("password", "the new password", 1), field="new_password")
    return None


async def _change_password(session: SessionDep, request: Request, account: User, new: str, *, actor: str) -> None:
    account.password_hash = await passwords.hash_in_thread(new)
    current_id = getattr(request.state, "web_session_id", None)
    await login.end_other_sessions(session, account.id, keep=current_id)
    audit.record(
        session,
        actor=actor,
        action="user.updated",
        target_type="user",
        target_id=account.id,
        details={"fields": ["password"], "by": "self"},
    )
    await session.flush()
