"""Use cases of the timeline: append idempotently, read newest first, move on merge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.timeline import repository
from hub.timeline.models import TimelineEntry


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
    in place, so the contact's timeline shows its latest state rather than one line per callback."""
    entry = await repository.by_external_id(session, source, external_id)
    if entry is None:
        return await append(
            session,
            contact_id=contact_id,
            kind=kind,
            source=source,
            external_id=external_id,
            data=data,
            occurred_at=occurred_at,
        )
    entry.data = data
    entry.contact_id = contact_id
    await session.flush()
    return entry


async def remove(session: AsyncSession, source: str, external_id: str) -> bool:
    """Withdraw a derived marker that later facts disproved (a "missed" call that was answered)."""
    return await repository.delete_by_external_id(session, source, external_id)


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
        await repository.insert_entries(session, entries)
