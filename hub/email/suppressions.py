"""The suppression list: which addresses the hub must not email, and why."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.normalize import InvalidIdentity, normalize_email
from hub.email import repository
from hub.email.models import Suppression

SUPPRESSION_PRECEDENCE = {"unsubscribe": 1, "hard_bounce": 2, "complaint": 3}
"""A stronger reason replaces a weaker one; a resubscribe lifts only ``unsubscribe``."""


def suppression_reason(kind: str, bounce: str | None) -> str | None:
    """Why an event puts its address on the suppression list, if it does."""
    if kind == "bounced":
        return "hard_bounce" if bounce == "hard" else None
    return {"complained": "complaint", "unsubscribed": "unsubscribe"}.get(kind)


async def apply_events(session: AsyncSession, rows: list[dict[str, Any]]) -> list[str]:
    """Suppress or lift addresses for stored email events (rows of email_events); the addresses changed."""
    relevant = [r for r in rows if suppression_reason(r["kind"], r["bounce"]) or r["kind"] == "resubscribed"]
    if not relevant:
        return []
    current = await repository.suppressions_for(session, (r["recipient"] for r in relevant))
    changed: list[str] = []
    for row in relevant:
        email = row["recipient"]
        reason = suppression_reason(row["kind"], row["bounce"])
        existing = current.get(email)
        if reason is None:  # a resubscribe lifts an unsubscribe, never a bounce or a complaint
            if existing is not None and existing.reason == "unsubscribe":
                await repository.delete_suppression(session, email)
                del current[email]
                changed.append(email)
            continue
        if existing is None:
            values = _suppression_values(row, reason)
            if await repository.insert_suppression(session, values):
                # The stored row, not a detached copy: a stronger reason later in this batch must update it.
                current.update(await repository.suppressions_for(session, [email]))
                changed.append(email)
            continue
        if SUPPRESSION_PRECEDENCE.get(reason, 0) > SUPPRESSION_PRECEDENCE.get(existing.reason, 0):
            for name, value in _suppression_values(row, reason).items():
                if name != "created_at":
                    setattr(existing, name, value)
            changed.append(email)
    return changed


def _suppression_values(row: dict[str, Any], reason: str) -> dict[str, Any]:
    now = clock.now()
    return {
        "email": row["recipient"],
        "reason": reason,
        "source": row["source"],
        "detail": (row["reason"] or row["provider_event"])[:500],
        "contact_id": row["contact_id"],
        "email_event_id": row["id"],
        "created_at": now,
        "updated_at": now,
    }


async def list_suppressions(
    session: AsyncSession, *, limit: int, before_id: int | None, reason: str | None = None
) -> list[Suppression]:
    """The suppression list, newest first."""
    return await repository.list_suppressions(session, limit=limit, before_id=before_id, reason=reason)


async def is_suppressed(session: AsyncSession, email: str) -> Suppression | None:
    """The suppression that forbids emailing this address, if any."""
    normalized = normalized_address(email)
    return (await repository.suppressions_for(session, [normalized])).get(normalized) if normalized else None


@lru_cache(maxsize=8192)
def normalized_address(email: str) -> str | None:
    """The canonical form of an address, or None when it is not one.

    Cached: a provider batch names the same few recipients many times, and validation is not free.
    """
    try:
        return normalize_email(email)
    except InvalidIdentity:
        return None
