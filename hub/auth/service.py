"""API keys: issue (shown once), authenticate, list, revoke. Only a SHA-256 of a key is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.auth import repository
from hub.auth.models import ApiKey
from hub.errors import NotFound, Unauthorized, UnprocessableInput
from hub.reps import service as reps

Role = Literal["admin", "manager", "rep"]
ROLES: tuple[Role, ...] = ("admin", "manager", "rep")
_KEY_PREFIX = "hub_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key or a dashboard user, with its name, role, and the rep it acts as (role ``rep``).

    The same role rules apply to both; ``actor`` is how logs name the caller.
    """

    key_id: int | None
    name: str
    role: Role
    rep_id: int | None
    user_id: int | None = None
    """Set for a dashboard user (hub/accounts); ``key_id`` is then None."""

    @property
    def actor(self) -> str:
        """``user:<id>`` for a dashboard user, ``key:<id>`` for an API key: who did it, in every log."""
        return f"user:{self.user_id}" if self.user_id is not None else f"key:{self.key_id}"


def _hash(key: str) -> str:
    # Keys are 190+ random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, *, name: str, role: str, rep_id: int | None = None) -> tuple[ApiKey, str]:
    """A new key row and the plaintext key, which is never stored."""
    if role not in ROLES:
        raise UnprocessableInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "rep" and rep_id is None:
        raise UnprocessableInput("a rep key needs the rep it acts as (--rep)", field="rep_id")
    if not name.strip():
        raise UnprocessableInput("name must not be empty", field="name")
    if rep_id is not None and await reps.find_rep(session, rep_id) is None:
        raise UnprocessableInput(f"rep {rep_id} does not exist; add the rep first (hub rep create)", field="rep_id")
    prefix = secrets.token_hex(4)
    plaintext = f"{_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey(name=name.strip(), role=role, rep_id=rep_id, prefix=prefix, key_hash=_hash(plaintext))
    return await repository.insert(session, key), plaintext


async def authenticate(session: AsyncSession, presented: str) -> Principal:
    """The principal for a presented key; Unauthorized for unknown, malformed or revoked keys."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or f"{parts[0]}_" != _KEY_PREFIX:
        raise Unauthorized("API key is malformed; expected hub_<prefix>_<secret>")
    key = await repository.by_prefix(session, parts[1])
    if key is None or not hmac.compare_digest(key.key_hash, _hash(presented)):
        raise Unauthorized("API key is not valid")
    if key.revoked_at is not None:
        raise Unauthorized("API key was revoked")
    return Principal(key_id=key.id, name=key.name, role=key.role, rep_id=key.rep_id)  # type: ignore[arg-type]


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key (hashes are never shown), oldest first."""
    return await repository.all_keys(session)


async def revoke_key(session: AsyncSession, key_id: int) -> ApiKey:
    """Revoke a key; later requests with it get 401."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await session.flush()
    return key


async def any_key_issued(session: AsyncSession) -> bool:
    """False only on a fresh database, where first start prints an admin key."""
    return await repository.count_keys(session) > 0
