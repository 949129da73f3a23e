"""Queries on imports, their files, rows and errors; the only module here that builds SQL for them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import advisory_key
from hub.imports.models import ImportedRow, ImportFile, ImportRowError, LeadImport
from hub.timeline.models import TimelineEntry

RUNNABLE = ("queued", "running")


async def add_import(session: AsyncSession, lead_import: LeadImport, content: bytes) -> LeadImport:
    """Store a new import and its file."""
    session.add(lead_import)
    await session.flush()
    session.add(ImportFile(import_id=lead_import.id, content=content))
    await session.flush()
    return lead_import


async def get(session: AsyncSession, import_id: int) -> LeadImport | None:
    """An import by id, with fresh counters."""
    stmt = select(LeadImport).where(LeadImport.id == import_id)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).one_or_none()


async def lock(session: AsyncSession, import_id: int) -> LeadImport | None:
    """The import locked for one batch; None when another worker holds it (PostgreSQL) or it is gone.

    The lock, not a lease, keeps two workers off the same rows: each batch reads ``processed_rows``
    under it and commits the next offset with the batch."""
    stmt = select(LeadImport).where(LeadImport.id == import_id).with_for_update(skip_locked=True)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).one_or_none()


async def next_runnable(session: AsyncSession, *, runner: str) -> int | None:
    """The oldest import the background worker should work on."""
    stmt = (
        select(LeadImport.id)
        .where(LeadImport.status.in_(RUNNABLE), LeadImport.runner == runner)
        .order_by(LeadImport.id)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def drafts_before(session: AsyncSession, cutoff: datetime, *, limit: int = 1000) -> list[LeadImport]:
    """Drafts uploaded before ``cutoff``, locked (two workers sweeping expire each once)."""
    stmt = (
        select(LeadImport)
        .where(LeadImport.status == "draft", LeadImport.created_at < cutoff)
        .order_by(LeadImport.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(stmt)).all())


async def unfinished_like(session: AsyncSession, *, namespace: str, file_sha256: str, runner: str) -> LeadImport | None:
    """An interrupted import of the same file into the same namespace (the CLI resumes it)."""
    stmt = (
        select(LeadImport)
        .where(
            LeadImport.namespace == namespace,
            LeadImport.file_sha256 == file_sha256,
            LeadImport.runner == runner,
            LeadImport.status.in_(RUNNABLE),
        )
        .order_by(LeadImport.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def newest(
    session: AsyncSession, *, limit: int, before_id: int | None = None, created_by: str | None = None
) -> list[LeadImport]:
    """Imports newest first (only those ``created_by`` uploaded, if given)."""
    stmt = select(LeadImport).order_by(LeadImport.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(LeadImport.id < before_id)
    if created_by is not None:
        stmt = stmt.where(LeadImport.created_by == created_by)
    return list((await session.scalars(stmt)).all())


async def file_content(session: AsyncSession, import_id: int) -> bytes | None:
    """The uploaded bytes."""
    stmt = select(ImportFile.content).where(ImportFile.import_id == import_id)
    return (await session.scalars(stmt)).first()


async def delete_file(session: AsyncSession, import_id: int) -> None:
    """Forget an import's uploaded bytes."""
    await session.execute(delete(ImportFile).where(ImportFile.import_id == import_id))


async def existing_keys(session: AsyncSession, namespace: str, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` were imported into ``namespace`` already."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        rows = await session.scalars(
            select(ImportedRow.row_key).where(
                ImportedRow.namespace == namespace, ImportedRow.row_key.in_(wanted[start : start + 500])
            )
        )
        found.update(rows)
    return found


async def add_rows(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Record imported rows in one statement."""
    if rows:
        await session.execute(insert(ImportedRow), list(rows))


async def add_timeline_entries(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    """The batch's ``imported`` entries in one executemany, not an ORM flush with a RETURNING per entry.

    (No reaction listens to ``imported``, so these need not pass through hub.timeline's written-entries list.)"""
    if entries:
        await session.execute(insert(TimelineEntry), list(entries))


async def add_errors(session: AsyncSession, errors: Sequence[dict[str, Any]]) -> None:
    """Record failed rows in one statement, any NUL in their text replaced (U+FFFD)."""
    if errors:
        await session.execute(insert(ImportRowError), [_storable(error) for error in errors])


def _storable(error: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL stores no NUL in text or JSON: an error quoting one would fail the batch's commit, and the import
    would retry that batch for ever. The file check refuses NUL first; this keeps any other path from sticking."""
    cleaned = dict(error)
    for name in ("row_key", "column", "reason"):
        if isinstance(cleaned.get(name), str):
            cleaned[name] = _without_nul(cleaned[name])
    if isinstance(cleaned.get("values"), list):
        cleaned["values"] = [_without_nul(v) if isinstance(v, str) else v for v in cleaned["values"]]
    return cleaned


def _without_nul(value: str) -> str:
    return value.replace("\x00", "\ufffd")


async def errors_of(
    session: AsyncSession, import_id: int, *, after_id: int = 0, limit: int = 1000
) -> list[ImportRowError]:
    """A page of an import's failed rows in file order (the errors CSV streams them page by page)."""
    stmt = (
        select(ImportRowError)
        .where(ImportRowError.import_id == import_id, ImportRowError.id > after_id)
        .order_by(ImportRowError.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def count_errors(session: AsyncSession, import_id: int) -> int:
    """How many failed rows an import recorded."""
    stmt = select(func.count()).select_from(ImportRowError).where(ImportRowError.import_id == import_id)
    return int((await session.scalar(stmt)) or 0)


async def lock_identity_keys(session: AsyncSession, lock_keys: Iterable[str]) -> None:
    """hub.db.lock_keys for a whole batch in one statement, in key order (no cycle with form posts or merges).

    A form post for one of these people waits until the batch commits, and the batch's look-up of who
    owns each identity cannot be overtaken by it. SQLite serialises writers already."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({advisory_key(k) for k in lock_keys})
    if keys:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS s"),
            {"keys": keys},
        )
