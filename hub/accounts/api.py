"""REST endpoints for admins: dashboard users and API keys. Every change is audited in its own transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from hub.accounts import keys
from hub.accounts import service as accounts
from hub.accounts.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    SessionsEnded,
    UserCreate,
    UserOut,
    UserPatch,
)
from hub.deps import AdminDep, SessionDep
from hub.validation import MAX_ID

users_router = APIRouter(prefix="/api/users", tags=["users"])
keys_router = APIRouter(prefix="/api/api-keys", tags=["api keys"])
router = APIRouter()
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


@users_router.post("", response_model=UserOut, status_code=201)
async def create_user(spec: UserCreate, session: SessionDep, admin: AdminDep) -> UserOut:
    """Add a dashboard user (the password is stored as an argon2id hash); 409 when the email is taken."""
    user = await accounts.create_user(session, spec, actor=admin.actor)
    await session.commit()
    return UserOut.model_validate(user)


@users_router.get("", response_model=list[UserOut])
async def list_users(session: SessionDep, _admin: AdminDep) -> list[UserOut]:
    """Every dashboard user, oldest first."""
    return [UserOut.model_validate(user) for user in await accounts.list_users(session)]


@users_router.patch("/{user_id}", response_model=UserOut)
async def update_user(user_id: Id, patch: UserPatch, session: SessionDep, admin: AdminDep) -> UserOut:
    """Change name, role or rep, reset the password, disable or enable, unlock; disabling ends every session."""
    user = await accounts.update_user(session, user_id, patch, actor=admin.actor)
    await session.commit()
    return UserOut.model_validate(user)


@users_router.post("/{user_id}/logout-everywhere", response_model=SessionsEnded)
async def logout_everywhere(user_id: Id, session: SessionDep, admin: AdminDep) -> SessionsEnded:
    """End every dashboard session of the user at once."""
    ended = await accounts.logout_everywhere(session, user_id, actor=admin.actor)
    await session.commit()
    return SessionsEnded(user_id=user_id, sessions_ended=ended)


@keys_router.post("", response_model=ApiKeyCreated, status_code=201)
async def create_api_key(spec: ApiKeyCreate, session: SessionDep, admin: AdminDep) -> ApiKeyCreated:
    """Issue a key; ``key`` is in this answer only, the hub keeps just its hash."""
    key, plaintext = await keys.issue_key(
        session, name=spec.name, role=spec.role, rep_id=spec.rep_id, actor=admin.actor
    )
    await session.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=plaintext)


@keys_router.get("", response_model=list[ApiKeyOut])
async def list_api_keys(session: SessionDep, _admin: AdminDep) -> list[ApiKeyOut]:
    """Every key, revoked ones included (never the keys themselves)."""
    return [ApiKeyOut.model_validate(key) for key in await keys.list_keys(session)]


@keys_router.delete("/{key_id}", response_model=ApiKeyOut)
async def revoke_api_key(key_id: Id, session: SessionDep, admin: AdminDep) -> ApiKeyOut:
    """Revoke a key: requests with it get 401 from now on. Revoking twice changes nothing."""
    key = await keys.revoke_key(session, key_id, actor=admin.actor)
    await session.commit()
    return ApiKeyOut.model_validate(key)


router.include_router(users_router)
router.include_router(keys_router)
