"""Queries on email messages, email events and suppressions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    Text,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import UtcDateTime
from hub.email.models import EmailEvent, EmailMessage, Suppression

_IN_CHUNK = 400
"""Values per ``IN (...)`` look-up: well under SQLite's and asyncpg's bound-parameter limits."""


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def insert_message(session: AsyncSession, message: EmailMessage) -> EmailMessage:
    """Add a message and flush for its id."""
    session.add(message)
    await session.flush()
    return message


async def messages_by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, EmailMessage]:
    """Messages by hub id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.scalars(select(EmailMessage).where(EmailMessage.id.in_(wanted)))
    return {m.id: m for m in rows}


async def messages_by_rfc_ids(session: AsyncSession, rfc_ids: Iterable[str]) -> dict[str, EmailMessage]:
    """Messages by Message-ID header."""
    wanted = sorted(set(rfc_ids))
    if not wanted:
        return {}
    rows = await session.scalars(select(EmailMessage).where(EmailMessage.rfc_message_id.in_(wanted)))
    return {m.rfc_message_id: m for m in rows if m.rfc_message_id}


async def known_external_ids(session: AsyncSession, source: str, external_ids: Sequence[str]) -> set[str]:
    """Which of these provider event ids are already stored (redeliveries)."""
    known: set[str] = set()
    for start in range(0, len(external_ids), _IN_CHUNK):
        chunk = external_ids[start : start + _IN_CHUNK]
        stmt = select(EmailEvent.external_id).where(EmailEvent.source == source, EmailEvent.external_id.in_(chunk))
        known.update((await session.scalars(stmt)).all())
    return known


async def last_resubscribe_id(session: AsyncSession, recipient: str) -> int | None:
    """The newest resubscribe of an address (a provider's, or an admin's lift of its suppression)."""
    stmt = select(func.max(EmailEvent.id)).where(EmailEvent.recipient == recipient, EmailEvent.kind == "resubscribed")
    return await session.scalar(stmt)


async def event_times(session: AsyncSession, event_ids: Iterable[int]) -> dict[int, datetime]:
    """When these events happened."""
    wanted = sorted(set(event_ids))
    times: dict[int, datetime] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        stmt = select(EmailEvent.id, EmailEvent.occurred_at).where(EmailEvent.id.in_(wanted[start : start + _IN_CHUNK]))
        times.update((event_id, at) for event_id, at in await session.execute(stmt))
    return times


_EVENT_ARRAYS: dict[str, Any] = {
    **dict.fromkeys(
        (
            "source",
            "external_id",
            "kind",
            "provider_event",
            "recipient",
            "provider_message_id",
            "url",
            "user_agent",
            "ip",
            "machine_reason",
            "bounce",
            "reason",
        ),
        Text(),
    ),
    **dict.fromkeys(("message_id", "contact_id"), BigInteger()),
    **dict.fromkeys(("occurred_at", "received_at"), DateTime(timezone=True)),
    **dict.fromkeys(("machine", "collapsed"), Boolean()),
    **dict.fromkeys(("categories", "data"), Text()),  # JSON text, cast to jsonb in the statement
}
_JSON_COLUMNS = ("categories", "data")
_INSERT_EVENTS_PG = text(
    f"""
    INSERT INTO email_events ({", ".join(_EVENT_ARRAYS)})
    SELECT {", ".join(f"t.{name}::jsonb" if name in _JSON_COLUMNS else f"t.{name}" for name in _EVENT_ARRAYS)}
    FROM unnest({", ".join(f":{name}" for name in _EVENT_ARRAYS)}) WITH ORDINALITY AS t({", ".join(_EVENT_ARRAYS)}, n)
    ORDER BY t.n
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING id, source, external_id
    """  # noqa: S608 - the names are this module's constants; every value is bound
).bindparams(*(bindparam(name, type_=ARRAY(kind)) for name, kind in _EVENT_ARRAYS.items()))
"""One SQL text whatever the number of rows (a column per array): a multi-row VALUES statement has a text per
row count, which asyncpg prepared (and PostgreSQL parsed and planned) afresh for nearly every batch."""


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert events, skipping any a concurrent delivery stored first; ids of the rows inserted."""
    if not rows:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        dialect = session.get_bind().dialect
        arrays = {name: [_bound(name, row[name], dialect) for row in rows] for name in _EVENT_ARRAYS}
        inserted = await session.execute(_INSERT_EVENTS_PG, arrays)
        return {(row.source, row.external_id): row.id for row in inserted}
    # One statement with the rows as executemany parameters: SQLAlchemy batches them into
    # multi-row INSERTs ("insertmanyvalues") from one cached compilation. Building the VALUES
    # list into the statement instead recompiled thousands of bound parameters on every batch.
    stmt = (
        _insert(session)(EmailEvent.__table__)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(EmailEvent.id, EmailEvent.source, EmailEvent.external_id)
    )
    result = await session.execute(stmt, rows)
    return {(row.source, row.external_id): row.id for row in result}


_UTC = UtcDateTime()


def _bound(name: str, value: Any, dialect: Dialect) -> Any:
    """A row's value as its array carries it: JSON as text (as SQLAlchemy's JSON type writes it), times as the
    columns' ``UtcDateTime`` binds them."""
    if name in _JSON_COLUMNS:
        return json.dumps(value)
    if isinstance(value, datetime):
        return _UTC.process_bind_param(value, dialect)
    return value


def _by_source(provider_keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Provider message ids grouped by source: ``source = ? AND provider_message_id IN (...)`` uses the
    (source, provider_message_id) index, where a row-value IN list would not."""
    grouped: dict[str, set[str]] = {}
    for source, provider_message_id in provider_keys:
        grouped.setdefault(source, set()).add(provider_message_id)
    return {source: sorted(ids) for source, ids in grouped.items()}


async def recent_engagement(
    session: AsyncSession, message_ids: Iterable[int], provider_keys: Iterable[tuple[str, str]], since: datetime
) -> list[Any]:
    """Opens and clicks since ``since`` of these messages (by hub id or by provider message id)."""
    columns = (
        EmailEvent.id,
        EmailEvent.source,
        EmailEvent.message_id,
        EmailEvent.provider_message_id,
        EmailEvent.kind,
        EmailEvent.occurred_at,
        EmailEvent.url,
        EmailEvent.machine,
    )
    recent = (EmailEvent.kind.in_(("opened", "clicked")), EmailEvent.occurred_at >= literal(since, UtcDateTime()))
    selections = []
    ids = sorted(set(message_ids))
    for start in range(0, len(ids), _IN_CHUNK):
        selections.append(select(*columns).where(EmailEvent.message_id.in_(ids[start : start + _IN_CHUNK]), *recent))
    for source, provider_ids in _by_source(provider_keys).items():
        for start in range(0, len(provider_ids), _IN_CHUNK):
            chunk = provider_ids[start : start + _IN_CHUNK]
            selections.append(
                select(*columns).where(EmailEvent.source == source, EmailEvent.provider_message_id.in_(chunk), *recent)
            )
    found: dict[int, Any] = {}
    for stmt in selections:  # an event can match by both ids: keep it once
        for row in await session.execute(stmt):
            found[row.id] = row
    return list(found.values())


async def delivery_times(
    session: AsyncSession, provider_keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    """When each provider message was first reported delivered."""
    times: dict[tuple[str, str], datetime] = {}
    for source, provider_ids in _by_source(provider_keys).items():
        for start in range(0, len(provider_ids), _IN_CHUNK):
            stmt = (
                select(EmailEvent.provider_message_id, func.min(EmailEvent.occurred_at))
                .where(
                    EmailEvent.source == source,
                    EmailEvent.provider_message_id.in_(provider_ids[start : start + _IN_CHUNK]),
                    EmailEvent.kind == "delivered",
                )
                .group_by(EmailEvent.provider_message_id)
            )
            for provider_message_id, at in await session.execute(stmt):
                times[(source, provider_message_id or "")] = at
    return times


async def mark_machine(session: AsyncSession, event_ids: Sequence[int], reason: str) -> list[EmailEvent]:
    """Reclassify events as machine-made (a link scanner's burst shows up only after its first clicks)."""
    if not event_ids:
        return []
    await session.execute(
        update(EmailEvent).where(EmailEvent.id.in_(event_ids)).values(machine=True, machine_reason=reason)
    )
    stmt = select(EmailEvent).where(EmailEvent.id.in_(event_ids)).execution_options(populate_existing=True)
    return list((await session.scalars(stmt)).all())


async def list_unmatched(session: AsyncSession, *, limit: int, before_id: int | None) -> list[EmailEvent]:
    """Events about recipients who are no contact, newest first."""
    # Only what providers and recipients reported: an admin's own suppression lift is no stranger's event.
    stmt = select(EmailEvent).where(EmailEvent.contact_id.is_(None), EmailEvent.source != "api")
    if before_id is not None:
        stmt = stmt.where(EmailEvent.id < before_id)
    return list((await session.scalars(stmt.order_by(EmailEvent.id.desc()).limit(limit))).all())


async def events_of_contact(
    session: AsyncSession, contact_id: int, *, limit: int, before_id: int | None
) -> list[EmailEvent]:
    """A contact's email events, newest first."""
    stmt = select(EmailEvent).where(EmailEvent.contact_id == contact_id)
    if before_id is not None:
        stmt = stmt.where(EmailEvent.id < before_id)
    return list((await session.scalars(stmt.order_by(EmailEvent.id.desc()).limit(limit))).all())


async def suppressions_for(session: AsyncSession, emails: Iterable[str]) -> dict[str, Suppression]:
    """Current suppressions of these addresses."""
    wanted = sorted(set(emails))
    if not wanted:
        return {}
    rows = await session.scalars(select(Suppression).where(Suppression.email.in_(wanted)))
    return {s.email: s for s in rows}


async def insert_suppressions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Add suppressions in one statement; an address a concurrent request suppressed first is skipped."""
    if rows:
        stmt = _insert(session)(Suppression.__table__).on_conflict_do_nothing(index_elements=["email"])
        await session.execute(stmt, rows)


async def delete_suppressions(session: AsyncSession, emails: Iterable[str]) -> None:
    """Remove the suppressions of these addresses."""
    wanted = sorted(set(emails))
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        stmt = delete(Suppression).where(Suppression.email.in_(chunk))
        await session.execute(stmt.execution_options(synchronize_session=False))


async def delete_suppression(session: AsyncSession, email: str) -> Suppression | None:
    """Remove an address's suppression; returns what this call removed (None when a concurrent one did)."""
    # DELETE ... RETURNING rather than SELECT then DELETE: two concurrent lifts would both find the row,
    # and both record a lift, though only one of them removed anything.
    stmt = delete(Suppression).where(Suppression.email == email).returning(Suppression)
    return (await session.scalars(stmt.execution_options(synchronize_session=False))).one_or_none()


async def list_suppressions(
    session: AsyncSession, *, limit: int, before_id: int | None, reason: str | None
) -> list[Suppression]:
    """Suppressions, newest first."""
    stmt = select(Suppression)
    if before_id is not None:
        stmt = stmt.where(Suppression.id < before_id)
    if reason is not None:
        stmt = stmt.where(Suppression.reason == reason)
    return list((await session.scalars(stmt.order_by(Suppression.id.desc()).limit(limit))).all())


async def move_contact(session: AsyncSession, from_contact: int, to_contact: int) -> None:
    """Re-point a merged contact's messages and events to the survivor."""
    for model in (EmailMessage, EmailEvent):
        await session.execute(update(model).where(model.contact_id == from_contact).values(contact_id=to_contact))
