"""Inbox use cases: record an inbound event once, find what an earlier delivery produced."""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True)
class InboxRow:
    """What ``record`` stores for an event, known before the event is applied (see ``prerecord``)."""

    source: str
    external_id: str
    kind: str
    status: str
    payload: dict[str, Any]
    spam_reason: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.external_id


_PRERECORDED = "inbox.prerecorded"


async def prerecord(session: AsyncSession, rows: Sequence[InboxRow]) -> None:
    """Store a worker batch's inbox rows in one statement before its events are applied (PostgreSQL): each event's
    ``record`` then takes its row without a round trip of its own. A row already there (a redelivery), and a second
    row of the same event in the batch, are left to ``record``, which finds the duplicate as it always does.
    Rows go in key order, so two batches holding some of the same events never wait on each other in a cycle.
    ``all_prerecorded_taken`` checks, before the commit, that every row stored here had its event applied.
    Only for a transaction with no savepoint around its events' ``record``: a savepoint rolled back after its event
    took the row would leave the row stored, and the event run again would find it as its own duplicate."""
    session.info.pop(_PRERECORDED, None)
    if session.get_bind().dialect.name != "postgresql" or not rows:
        return
    first_of_each = {row.key: row for row in reversed(rows)}  # reversed: the first row of a key wins
    ordered = [first_of_each[key] for key in sorted(first_of_each)]
    inserted = await repository.insert_many_if_absent(
        session,
        [
            {
                "source": row.source,
                "external_id": row.external_id,
                "kind": row.kind,
                "status": row.status,
                "spam_reason": row.spam_reason,
                "payload": row.payload,
                "erased_id": erased_key(row.external_id),
            }
            for row in ordered
        ],
        now=clock.now(),
    )
    session.info[_PRERECORDED] = {key: (first_of_each[key], event_id) for key, event_id in inserted.items()}


def all_prerecorded_taken(session: AsyncSession) -> None:
    """Raise when a row ``prerecord`` stored was not taken by its event's ``record``: it would stay behind with no
    effect, so the batch must not commit (it is then applied one event per transaction, without ``prerecord``)."""
    left = session.info.pop(_PRERECORDED, None)
    if left:
        raise RuntimeError(f"{len(left)} inbox rows were stored for events the batch did not record: {sorted(left)}")


def _take_prerecorded(session: AsyncSession, row: InboxRow) -> int | None:
    prerecorded: dict[tuple[str, str], tuple[InboxRow, int]] | None = session.info.get(_PRERECORDED)
    if not prerecorded or (taken := prerecorded.pop(row.key, None)) is None:
        return None
    stored, event_id = taken
    if stored != row:  # the batch stored other values than its event records: a bug, never a silent difference
        raise RuntimeError(f"the inbox row stored for {row.key} differs from what its event records")
    return event_id


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
    row = InboxRow(source, external_id, kind, status, payload, spam_reason)
    if (prerecorded_id := _take_prerecorded(session, row)) is not None:
        return Recorded(event_id=prerecorded_id, duplicate=False)
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


async def record_row(session: AsyncSession, row: InboxRow) -> Recorded:
    """``record`` of an ``InboxRow``."""
    return await record(
        session,
        source=row.source,
        external_id=row.external_id,
        kind=row.kind,
        status=row.status,
        payload=row.payload,
        spam_reason=row.spam_reason,
    )


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
