"""Use cases of the timeline: append idempotently, read newest first, move on merge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from hub import clock
from hub.timeline import repository
from hub.timeline.models import TimelineEntry

if TYPE_CHECKING:
    from hub.auth.service import Principal

_WRITTEN = "hub.timeline.written"
"""Key in ``session.info`` of the entries this unit of work wrote (scoring and routing react to them), each
with its number in the session's count of entries written (``_COUNT``)."""
_COUNT = "hub.timeline.count"
_COUNT_AT_START: WeakKeyDictionary[SessionTransaction, int] = WeakKeyDictionary()
"""How many entries the session had written when each of its transactions and savepoints began."""


def _remember(session: AsyncSession, *entries: TimelineEntry) -> None:
    written = session.info.setdefault(_WRITTEN, [])
    count = session.info.get(_COUNT, 0)
    written.extend(enumerate(entries, start=count))
    session.info[_COUNT] = count + len(entries)


def take_written(session: AsyncSession) -> list[TimelineEntry]:
    """The entries written since the last call, in order, except those a rollback undid; the list is emptied."""
    return [entry for _, entry in session.info.pop(_WRITTEN, [])]


@event.listens_for(Session, "after_transaction_create")
def _note_count(session: Session, transaction: SessionTransaction) -> None:
    _COUNT_AT_START[transaction] = session.info.get(_COUNT, 0)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    # An entry written in a savepoint that a deadlock rolled back (retry_transient runs the work again and
    # writes it anew), or in a transaction rolled back before the session commits something else (the worker
    # postponing an event that failed to apply), no longer exists: the automation at the next commit must not
    # react to it (it would publish, route or alert twice, or for nothing).
    start = _COUNT_AT_START.pop(previous_transaction, None)
    written = session.info.get(_WRITTEN)
    if start is not None and written:
        written[:] = [(number, entry) for number, entry in written if number < start]


async def append(
    session: AsyncSession,
    *,
    contact_id: int,
    kind: str,
    source: str,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
    external_id: str | None = None,
) -> TimelineEntry:
    """Add an entry. ``(source, external_id)`` is unique: callers that ingest provider events
    dedupe in the inbox first, under its own unique key, so no look-up is spent here."""
    entry = TimelineEntry(
        contact_id=contact_id,
        kind=kind,
        source=source,
        external_id=external_id,
        data=data,
        occurred_at=occurred_at or clock.now(),
        recorded_at=clock.now(),
    )
    _remember(session, entry)
    return await repository.insert_entry(session, entry)


async def upsert(
    session: AsyncSession,
    *,
    contact_id: int,
    kind: str,
    source: str,
    external_id: str,
    data: dict[str, Any],
    occurred_at: datetime,
) -> TimelineEntry:
    """The one entry for a fact that evolves (a call as its callbacks arrive): created once, then updated
    in place, so the contact's timeline shows its latest state rather than one line per callback. Its kind
    and recording time stay those of its first version; its time is the latest one given (a call's start moves
    earlier when an earlier callback arrives late). It goes on the contact's survivor if a merge of the contact had
    committed by the time the upsert runs (even one that committed after the caller read the contact)."""
    values = {
        "contact_id": contact_id,
        "kind": kind,
        "source": source,
        "external_id": external_id,
        "data": data,
        "occurred_at": occurred_at,
        "recorded_at": clock.now(),
    }
    entry = await repository.upsert_entry(session, values)
    _remember(session, entry)
    return entry


async def remove(session: AsyncSession, source: str, external_id: str) -> bool:
    """Withdraw a derived marker that later facts disproved (a "missed" call that was answered)."""
    # Written earlier in this unit of work, it no longer exists: the automation at the commit must not react to it
    # (a missed call's alert, event and callback task, for a call that was answered).
    written = session.info.get(_WRITTEN)
    if written:
        written[:] = [(number, entry) for number, entry in written if not _is_entry(entry, source, external_id)]
    return await repository.delete_by_external_id(session, source, external_id)


def _is_entry(entry: TimelineEntry, source: str, external_id: str) -> bool:
    # From the values the entry was written with: reading an attribute a rollback expired would load it.
    loaded = inspect(entry).dict
    return loaded.get("external_id") == external_id and loaded.get("source") == source


async def find(session: AsyncSession, source: str, external_id: str) -> TimelineEntry | None:
    """The entry a provider fact produced, if any."""
    return await repository.by_external_id(session, source, external_id)


async def move_to(session: AsyncSession, from_contact: int, to_contact: int) -> int:
    """Move every entry of a merged contact to the survivor."""
    return await repository.move_entries(session, from_contact, to_contact)


async def newest(
    session: AsyncSession,
    contact_id: int,
    *,
    limit: int,
    kinds: list[str] | None = None,
    before: tuple[datetime, int] | None = None,
) -> list[TimelineEntry]:
    """A page of a contact's timeline, newest first."""
    return await repository.newest_entries(session, contact_id, limit=limit, kinds=kinds, before=before)


async def append_many(session: AsyncSession, entries: list[TimelineEntry]) -> None:
    """Add many entries in one flush (a provider's batch of events): one round trip, not one per entry."""
    if entries:
        _remember(session, *entries)
        await repository.insert_entries(session, entries)


async def recent_of_kinds(
    session: AsyncSession, contact_id: int, kinds: list[str], *, since: datetime, limit: int
) -> list[TimelineEntry]:
    """The contact's entries of these kinds since ``since``, newest first, at most ``limit``."""
    return await repository.recent_of_kinds(session, contact_id, kinds, since=since, limit=limit)


async def oldest_of_kind(session: AsyncSession, contact_id: int, kind: str) -> TimelineEntry | None:
    """The contact's first entry of this kind."""
    return await repository.oldest_of_kind(session, contact_id, kind)


async def newest_of_kind_many(session: AsyncSession, contact_ids: Sequence[int], kind: str) -> dict[int, TimelineEntry]:
    """Each contact's newest entry of this kind (contacts without one are absent)."""
    found = await repository.newest_per_contact(session, contact_ids, [kind], per_contact=1)
    return {contact_id: entries[0] for contact_id, entries in found.items()}


async def newest_per_contact(
    session: AsyncSession, contact_ids: Sequence[int], kinds: Sequence[str], *, per_contact: int
) -> dict[int, list[TimelineEntry]]:
    """Each contact's newest ``per_contact`` entries of these kinds, newest first."""
    return await repository.newest_per_contact(session, contact_ids, kinds, per_contact=per_contact)


def note_data(body: str, author: Principal) -> dict[str, Any]:
    """A note's payload: its text and who wrote it, so the rep activity report credits the rep who did.

    An API key carries ``author_key_id`` (mapped to its rep by the report); a dashboard user carries
    ``author_user_id`` and, for a rep, ``rep_id`` directly.
    """
    data: dict[str, Any] = {"body": body, "author": author.name}
    if author.user_id is not None:
        data["author_user_id"] = author.user_id
        if author.rep_id is not None:
            data["rep_id"] = author.rep_id
    else:
        data["author_key_id"] = author.key_id
    return data
