"""Queries on timeline entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.db import UtcDateTime
from hub.timeline.models import TimelineEntry


async def insert_entry(session: AsyncSession, entry: TimelineEntry) -> TimelineEntry:
    """Add an entry and flush so it has an id."""
    session.add(entry)
    await session.flush()
    return entry


async def move_entries(session: AsyncSession, from_contact: int, to_contact: int) -> int:
    """Re-point a contact's entries to another contact (merge); returns how many moved."""
    count = await session.scalar(
        select(func.count()).select_from(TimelineEntry).where(TimelineEntry.contact_id == from_contact)
    )
    await session.execute(
        update(TimelineEntry).where(TimelineEntry.contact_id == from_contact).values(contact_id=to_contact)
    )
    return int(count or 0)


async def newest_entries(
    session: AsyncSession,
    contact_id: int,
    *,
    limit: int,
    kinds: list[str] | None = None,
    before: tuple[datetime, int] | None = None,
) -> list[TimelineEntry]:
    """Newest first; ``before`` is the (occurred_at, id) of the last entry already seen."""
    stmt: Any = select(TimelineEntry).where(TimelineEntry.contact_id == contact_id)
    if kinds:
        stmt = stmt.where(TimelineEntry.kind.in_(kinds))
    if before is not None:
        occurred_at, entry_id = before
        stmt = stmt.where(
            tuple_(TimelineEntry.occurred_at, TimelineEntry.id)
            < tuple_(literal(occurred_at, UtcDateTime()), literal(entry_id))
        )
    stmt = stmt.order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def by_external_id(session: AsyncSession, source: str, external_id: str) -> TimelineEntry | None:
    """The entry a provider fact produced."""
    stmt = select(TimelineEntry).where(TimelineEntry.source == source, TimelineEntry.external_id == external_id)
    return (await session.scalars(stmt)).one_or_none()


_UPSERTED = ("contact_id", "kind", "source", "external_id", "data", "occurred_at", "recorded_at")


def _upsert(insert: Any) -> Any:
    table = TimelineEntry.__table__
    values: dict[str, Any] = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in _UPSERTED}
    # The contact's survivor, found by the statement itself: a merge that committed after the caller read the
    # contact re-pointed what was committed then, not the row this transaction is writing.
    values["contact_id"] = (
        select(func.coalesce(Contact.merged_into_id, Contact.id))
        .where(Contact.id == values["contact_id"])
        .scalar_subquery()
    )
    statement = insert(TimelineEntry).values(values)
    return statement.on_conflict_do_update(
        index_elements=[TimelineEntry.source, TimelineEntry.external_id],
        set_={
            "data": statement.excluded.data,
            "contact_id": statement.excluded.contact_id,
            "occurred_at": statement.excluded.occurred_at,
        },
    ).returning(TimelineEntry)


_UPSERTS = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}
"""Built once, the values given at execution: building it (``excluded`` copies every column) cost ~0.2 ms of
Python, more than sending it, once per call callback."""


async def upsert_entry(session: AsyncSession, values: dict[str, Any]) -> TimelineEntry:
    """Insert the entry of ``(source, external_id)``, or give the existing one the new ``data``, ``contact_id``
    and ``occurred_at``: one statement either way; the entry as stored, on the survivor of ``contact_id`` when
    that contact was merged."""
    upsert = _UPSERTS[session.get_bind().dialect.name]
    params = {f"v_{name}": values[name] for name in _UPSERTED}
    result = await session.scalars(upsert, params, execution_options={"populate_existing": True})
    entry: TimelineEntry = result.one()
    return entry


async def insert_entries(session: AsyncSession, entries: list[TimelineEntry]) -> None:
    """Add entries and flush once; SQLAlchemy batches the INSERTs."""
    session.add_all(entries)
    await session.flush()


async def delete_by_external_id(session: AsyncSession, source: str, external_id: str) -> bool:
    """Delete the entry a provider fact produced; True when there was one."""
    stmt = delete(TimelineEntry).where(TimelineEntry.source == source, TimelineEntry.external_id == external_id)
    result = await session.execute(stmt.execution_options(synchronize_session="fetch"))
    return bool(getattr(result, "rowcount", 0))


async def recent_of_kinds(
    session: AsyncSession, contact_id: int, kinds: list[str], *, since: datetime, limit: int
) -> list[TimelineEntry]:
    """Entries of these kinds since ``since``, newest first (served by the contact/kind index)."""
    stmt = (
        select(TimelineEntry)
        .where(
            TimelineEntry.contact_id == contact_id,
            TimelineEntry.kind.in_(kinds),
            TimelineEntry.occurred_at >= since,
        )
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def oldest_of_kind(session: AsyncSession, contact_id: int, kind: str) -> TimelineEntry | None:
    """The contact's first entry of this kind (served by the contact/kind index)."""
    stmt = (
        select(TimelineEntry)
        .where(TimelineEntry.contact_id == contact_id, TimelineEntry.kind == kind)
        .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
        .limit(1)
    )
    return (await session.scalars(stmt)).one_or_none()


async def newest_per_contact(
    session: AsyncSession, contact_ids: Sequence[int], kinds: Sequence[str], *, per_contact: int
) -> dict[int, list[TimelineEntry]]:
    """Each contact's newest ``per_contact`` entries of these kinds, newest first, in one query per 500 ids."""
    found: dict[int, list[TimelineEntry]] = {}
    for start in range(0, len(contact_ids), 500):
        rank = (
            func.row_number()
            .over(
                partition_by=TimelineEntry.contact_id,
                order_by=(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc()),
            )
            .label("rank")
        )
        ranked = (
            select(TimelineEntry.id, rank)
            .where(TimelineEntry.contact_id.in_(contact_ids[start : start + 500]), TimelineEntry.kind.in_(kinds))
            .subquery()
        )
        stmt = (
            select(TimelineEntry)
            .join(ranked, ranked.c.id == TimelineEntry.id)
            .where(ranked.c.rank <= per_contact)
            .order_by(TimelineEntry.contact_id, TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
        )
        for entry in (await session.scalars(stmt)).all():
            found.setdefault(entry.contact_id, []).append(entry)
    return found
