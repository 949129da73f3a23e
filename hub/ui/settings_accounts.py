"""Settings: dashboard users (list, create, disable) and API keys (list, create with the key shown once, revoke).

Both go through hub/accounts (``service`` for users, ``keys`` for API keys), which record each change in
the audit log in the same transaction (``user.created``, ``user.disabled``, ``apikey.created``, ``apikey.revoked``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts import keys
from hub.accounts import service as accounts
from hub.accounts.schemas import ApiKeyCreate, UserCreate
from hub.deps import SessionDep
from hub.errors import Conflict, HubError
from hub.ui.auth import CsrfDep, WebAdminDep
from hub.ui.form_errors import Errors, errors_of
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render
from hub.validation import MAX_ID, parse_id

router = APIRouter()
IdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]
ROLES = (("rep", "rep"), ("manager", "manager"), ("admin", "admin"))


@router.get("/ui/settings/users", response_class=HTMLResponse)
async def users_page(request: Request, session: SessionDep, _admin: WebAdminDep) -> Response:
    """Users and API keys."""
    return await _page(request, session)


@router.post("/ui/settings/users", response_class=HTMLResponse)
async def create_user(request: Request, session: SessionDep, admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Add a dashboard user (argon2id hash; audited ``user.created``)."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in ("email", "name", "role", "rep_id")}
    try:
        spec = UserCreate(
            email=values["email"],
            name=values["name"],
            role=values["role"],
            rep_id=_rep_id(values["rep_id"]),
            password=SecretStr(str(form.get("password") or "")),
        )
        user = await accounts.create_user(session, spec, actor=admin.actor)
    except ValidationError as exc:
        return await _page(request, session, user_values=values, user_errors=errors_of(exc), status_code=422)
    except HubError as exc:
        await session.rollback()
        errors: Errors = {_user_field(exc.field): [exc.message]}
        return await _page(request, session, user_values=values, user_errors=errors, status_code=422)
    await session.commit()
    return RedirectResponse(f"/ui/settings/users?user_created={user.id}", status_code=303)


@router.post("/ui/settings/users/{user_id}/disable")
async def disable_user(user_id: IdPath, session: SessionDep, admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Refuse the user's logins and end their sessions (audited ``user.disabled``)."""
    if user_id == admin.user_id:
        raise Conflict("you cannot disable yourself; ask another admin", field="user_id")
    await accounts.disable_user(session, await accounts.get_user(session, user_id), actor=admin.actor)
    await session.commit()
    return RedirectResponse("/ui/settings/users", status_code=303)


@router.post("/ui/settings/api-keys", response_class=HTMLResponse)
async def create_key(request: Request, session: SessionDep, admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Issue an API key; its plaintext is shown this once and stored only as a hash."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in ("name", "role", "rep_id")}
    try:
        spec = ApiKeyCreate(
            name=values["name"],
            role=values["role"],
            rep_id=_rep_id(values["rep_id"]),
        )
        key, plaintext = await keys.issue_key(
            session, name=spec.name, role=spec.role, rep_id=spec.rep_id, actor=admin.actor
        )
    except ValidationError as exc:
        return await _page(request, session, key_values=values, key_errors=errors_of(exc), status_code=422)
    except HubError as exc:
        await session.rollback()
        errors: Errors = {exc.field or "": [exc.message]}
        return await _page(request, session, key_values=values, key_errors=errors, status_code=422)
    await session.commit()
    return await _page(request, session, new_key=plaintext, new_key_id=key.id)


@router.post("/ui/settings/api-keys/{key_id}/revoke")
async def revoke_key(key_id: IdPath, session: SessionDep, admin: WebAdminDep, _csrf: CsrfDep) -> Response:
    """Revoke a key: later requests with it get 401 (audited ``apikey.revoked``)."""
    await keys.revoke_key(session, key_id, actor=admin.actor)
    await session.commit()
    return RedirectResponse("/ui/settings/users", status_code=303)


def _rep_id(raw: str) -> int | str | None:
    # Left to pydantic (anything but an id is its 422 on rep_id), but an empty field means "no rep".
    return None if not raw else (parse_id(raw) or raw)


def _user_field(field: str | None) -> str:
    return field if field in ("email", "name", "role", "rep_id", "password") else ""


async def _page(
    request: Request,
    session: AsyncSession,
    *,
    user_values: dict[str, str] | None = None,
    user_errors: Errors | None = None,
    key_values: dict[str, str] | None = None,
    key_errors: Errors | None = None,
    new_key: str | None = None,
    new_key_id: int | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "ui/app/settings_users.html.j2",
        status_code=status_code,
        tabs=TABS,
        tab="users",
        users=await accounts.list_users(session),
        keys=await keys.list_keys(session),
        roles=ROLES,
        user_values=user_values or {"email": "", "name": "", "role": "rep", "rep_id": ""},
        user_errors=user_errors or {},
        key_values=key_values or {"name": "", "role": "manager", "rep_id": ""},
        key_errors=key_errors or {},
        new_key=new_key,
        new_key_id=new_key_id,
        user_created=request.query_params.get("user_created", "")[:20],
        me=getattr(getattr(request.state, "user", None), "user_id", None),
    )
