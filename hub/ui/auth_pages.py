"""Login, logout and the account page (own sessions, password change, log out everywhere)."""

from __future__ import annotations

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
        f"login:{client}", limit=runtime.settings.login_rate_per_ip, window_seconds=LOGIN_WINDOW_SECONDS
    )
    if retry is not None:
        raise RateLimited(f"too many login attempts from this address; try again in {retry} seconds", retry_after=retry)
    form = await request.form()
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


@router.post("/logout")
async def logout(request: Request, session: SessionDep, user: CsrfDep) -> RedirectResponse:
    """End this browser's session."""
    token = session_token(request)
    if token is not None:
        await login.end_session(session, token)
        await session.commit()
    log.info("dashboard logout: user %s", user.user_id)
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
    """Change one's own password; other sessions end, this one stays."""
    user_id = _user_id(user)
    form = await request.form()
    current = _form_text(form.get("current_password"), passwords.MAX_LENGTH + 1)
    new = _form_text(form.get("new_password"), passwords.MAX_LENGTH + 1)
    again = _form_text(form.get("new_password_again"), passwords.MAX_LENGTH + 1)
    account = await accounts.get_user(session, user_id)
    problem = await _password_problem(account, current, new, again)
    if problem is not None:
        return await _account_page(
            request, session, runtime, user_id, status_code=422, error=problem.message, error_field=problem.field
        )
    await _change_password(session, request, account, new, actor=user.actor)
    await session.commit()
    return await _account_page(
        request, session, runtime, user_id, message="Password changed; your other sessions ended."
    )


async def _password_problem(account: User, current: str, new: str, again: str) -> UnprocessableInput | None:
    if not await passwords.verify_in_thread(account.password_hash, current):
        return UnprocessableInput("the current password is not right", field="current_password")
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
