"""Inbox use cases: record an inbound event once, find what an earlier delivery produced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.inbox import repository
from hub.inbox.models import InboundEvent
from hub.privacy.rules import erased_key

PROCESSING = "processing"
PROCESSED = "processed"
SPAM = "spam"


@dataclass(frozen=True)
class Recorded:
    """The inbox row for an event; ``duplicate`` when an earlier delivery already stored it."""

    event_id: int
    duplicate: bool
    existing: InboundEvent | None = None


async def record(
    session: AsyncSession,
    *,
    source: str,
    external_id: str,
    kind: str,
    status: str,
    payload: dict[str, Any],
    spam_reason: str | None = None,
) -> Recorded:
    """Store an event under its unique ``(source, external_id)``; a redelivery returns the first row.

    An erasure replaced the key of an event that quoted the person with ``erased_key`` (hub/privacy/erase.py):
    a row under that key is the same event, or an integration's retry of an old lead post brings them back.
    """
    erased_id = erased_key(external_id)
    event_id = await repository.insert_if_absent(
        session,
        {
            "source": source,
            "external_id": external_id,
            "kind": kind,
            "status": status,
            "spam_reason": spam_reason,
            "payload": payload,
            "received_at": clock.now(),
        },
        erased_id=erased_id,
    )
    if event_id is not None:
        return Recorded(event_id=event_id, duplicate=False)
    existing = await repository.find(session, source, external_id, erased_id)
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish inside our transaction
        raise RuntimeError(f"inbox conflict on {source}/{external_id} but no row found")
    return Recorded(event_id=existing.id, duplicate=True, existing=existing)


async def mark_processed(
    session: AsyncSession, event_id: int, *, contact_id: int | None, timeline_entry_id: int | None
) -> None:
    """Link the event to what it produced (at ``write_deferred_marks`` in a session that ``defer_marks``)."""
    values = {"status": PROCESSED, "contact_id": contact_id, "timeline_entry_id": timeline_entry_id}
    deferred: list[dict[str, Any]] | None = session.info.get(_DEFERRED_MARKS)
    if deferred is not None:
        deferred.append({"event_id": event_id, **values})
    else:
        await repository.update(session, event_id, **values)


_DEFERRED_MARKS = "inbox.deferred_marks"


def defer_marks(session: AsyncSession) -> None:
    """Keep this session's ``mark_processed`` for ``write_deferred_marks``: a worker's batch of events then writes
    them in one execution, not one UPDATE (and round trip) per event. Nothing in the batch reads them meanwhile:
    a redelivery in the same batch is a duplicate by its inbox row, whatever that row's status."""
    session.info[_DEFERRED_MARKS] = []


async def write_deferred_marks(session: AsyncSession) -> None:
    """Write what ``mark_processed`` kept since ``defer_marks``, and mark at once from now on."""
    await repository.update_many(session, session.info.pop(_DEFERRED_MARKS, None) or [])


async def replace_payload(session: AsyncSession, event_id: int, payload: dict[str, Any]) -> None:
    """Keep ``payload`` instead of what was received (e.g. scrubbed: the event is about an erased contact)."""
    await repository.update(session, event_id, payload=payload)


async def list_spam(
    session: AsyncSession, *, limit: int, before_id: int | None = None, source: str | None = None
) -> list[InboundEvent]:
    """Bot submissions kept for review, newest first."""
    return await repository.list_by_status(session, SPAM, limit=limit, before_id=before_id, source=source)


async def prune_spam(session: AsyncSession, *, retention_days: int) -> int:
    """Forget bot submissions older than the retention period."""
    cutoff = clock.now() - timedelta(days=retention_days)
    return await repository.delete_older_than(session, SPAM, cutoff)


async def consume_nonce(session: AsyncSession, source: str, nonce: str, *, valid_for_seconds: int) -> bool:
    """Use a provider-signed one-time value; False when it was used before (a replay).

    Runs in the caller's transaction: if the request fails and rolls back, the nonce stays unused,
    so the provider's retry of the same delivery is still accepted.
    """
    expires_at = clock.now() + timedelta(seconds=valid_for_seconds)
    return await repository.insert_nonce(session, {"source": source, "nonce": nonce, "expires_at": expires_at})


async def prune_nonces(session: AsyncSession) -> int:
    """Forget nonces whose signed timestamps are too old to be accepted anyway."""
    return await repository.delete_expired_nonces(session, clock.now())
