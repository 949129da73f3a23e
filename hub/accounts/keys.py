"""API keys issued and revoked as audited administrative actions (the key mechanics live in hub/auth)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.auth import service as auth
from hub.auth.models import ApiKey
from hub.errors import Conflict


async def issue_key(
    session: AsyncSession, *, name: str, role: str, rep_id: int | None, actor: str
) -> tuple[ApiKey, str]:
    """A new key and its plaintext (shown once), recorded as ``apikey.created``."""
    key, plaintext = await auth.create_key(session, name=name, role=role, rep_id=rep_id)
    audit.record(
        session,
        actor=actor,
        action="apikey.created",
        target_type="apikey",
        target_id=key.id,
        details={"name": key.name, "role": key.role, "rep_id": key.rep_id, "prefix": key.prefix},
    )
    return key, plaintext


async def revoke_key(session: AsyncSession, key_id: int, *, actor: str) -> ApiKey:
    """Revoke a key, recorded as ``apikey.revoked`` (once: revoking a revoked key changes and records nothing).

    The key making the request cannot revoke itself: an admin would lock the hub's last door by mistake.
    """
    if actor == f"key:{key_id}":
        raise Conflict(
            "this is the key making the request; revoke it with another admin key or `hub apikey revoke`",
            field="key_id",
        )
    key = await session.get(ApiKey, key_id)
    already = key is not None and key.revoked_at is not None
    key = await auth.revoke_key(session, key_id)
    if not already:
        audit.record(
            session,
            actor=actor,
            action="apikey.revoked",
            target_type="apikey",
            target_id=key.id,
            details={"name": key.name, "role": key.role},
        )
    return key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key, oldest first (hashes never leave the database)."""
    return await auth.list_keys(session)
