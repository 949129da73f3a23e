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
