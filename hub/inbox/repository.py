"""Queries on the inbox of raw inbound events."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import ARRAY, String, Table, Text, bindparam, delete, func, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import UtcDateTime
from hub.inbox.models import AcceptedEvent, InboundEvent, WebhookNonce

_INBOUND = cast(Table, InboundEvent.__table__)
_INSERTED_COLUMNS = ("source", "external_id", "kind", "status", "spam_reason", "payload", "received_at")
_ERASED_ROW = (
    select(_INBOUND.c.id)
    .where(_INBOUND.c.source == bindparam("source"), _INBOUND.c.external_id == bindparam("erased_id"))
    .exists()
)
_INSERTS_IF_ABSENT = {
    name: insert(_INBOUND)
    .from_select(
        _INSERTED_COLUMNS,
        select(*(bindparam(column, type_=_INBOUND.c[column].type) for column in _INSERTED_COLUMNS)).where(~_ERASED_ROW),
    )
    .on_conflict_do_nothing(index_elements=["source", "external_id"])
    .returning(_INBOUND.c.id)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
"""Built once, the values given at execution: building the statement for each event cost more Python than
sending it (every webhook event passes here). The erased twin is looked for in the same statement, one more
probe of the unique index rather than one more round trip."""
_UPDATE_ONE = sql_update(_INBOUND).where(_INBOUND.c.id == bindparam("event_id"))
"""Sets the columns named in the execution's parameters (besides ``event_id``)."""


async def insert_if_absent(session: AsyncSession, values: dict[str, Any], *, erased_id: str) -> int | None:
    """Insert an event; None when ``(source, external_id)`` or ``(source, erased_id)`` is already there."""
    stmt = _INSERTS_IF_ABSENT[session.get_bind().dialect.name]
    event_id: int | None = (await session.execute(stmt, {**values, "erased_id": erased_id})).scalar_one_or_none()
    return event_id


_INSERT_MANY_IF_ABSENT_PG = text(
    """
    INSERT INTO inbound_events (source, external_id, kind, status, spam_reason, payload, received_at)
    SELECT t.source, t.external_id, t.kind, t.status, t.spam_reason, t.payload::jsonb, :now
    FROM unnest(:sources, :external_ids, :kinds, :statuses, :spam_reasons, :payloads, :erased_ids)
        WITH ORDINALITY AS t(source, external_id, kind, status, spam_reason, payload, erased_id, n)
    WHERE NOT EXISTS (SELECT 1 FROM inbound_events AS e WHERE e.source = t.source AND e.external_id = t.erased_id)
    ORDER BY t.n
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING id, source, external_id
    """
).bindparams(
    *(
        bindparam(name, type_=ARRAY(Text))
        for name in ("sources", "external_ids", "kinds", "statuses", "spam_reasons", "payloads", "erased_ids")
    ),
    bindparam("now", type_=UtcDateTime()),
)
"""``insert_if_absent`` for many events in one statement (PostgreSQL), in the order given."""


async def insert_many_if_absent(
    session: AsyncSession, rows: list[dict[str, Any]], *, now: datetime
) -> dict[tuple[str, str], int]:
    """Insert events (each: the columns of ``insert_if_absent`` and its ``erased_id``) in one statement, in the
    order given; the id of each one inserted, by ``(source, external_id)`` (PostgreSQL only)."""
    params: dict[str, Any] = {
        "sources": [row["source"] for row in rows],
        "external_ids": [row["external_id"] for row in rows],
        "kinds": [row["kind"] for row in rows],
        "statuses": [row["status"] for row in rows],
        "spam_reasons": [row["spam_reason"] for row in rows],
        "payloads": [payload_json(row["payload"]) for row in rows],
        "erased_ids": [row["erased_id"] for row in rows],
        "now": now,
    }
    result = await session.execute(_INSERT_MANY_IF_ABSENT_PG, params)
    return {(row.source, row.external_id): row.id for row in result.all()}


async def find(session: AsyncSession, source: str, *external_ids: str) -> InboundEvent | None:
    """The stored event for a provider id (the first of ``external_ids`` found, when given several)."""
    stmt = select(InboundEvent).where(InboundEvent.source == source, InboundEvent.external_id.in_(external_ids))
    found = {event.external_id: event for event in await session.scalars(stmt)}
    return next((found[key] for key in external_ids if key in found), None)


async def update(session: AsyncSession, event_id: int, **values: Any) -> None:
    """Set columns of one event without loading it (none is loaded while events are applied)."""
    await session.execute(_UPDATE_ONE, {"event_id": event_id, **values})


async def update_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Set the same columns of many events (each row: ``event_id`` and the values) in one execution: the driver
    sends them together, not one round trip each."""
    if rows:
        await session.execute(_UPDATE_ONE, rows)


async def list_by_status(
    session: AsyncSession, status: str, *, limit: int, before_id: int | None = None, source: str | None = None
) -> list[InboundEvent]:
    """Events of a status (e.g. spam), newest first, keyset-paginated on id."""
    stmt = select(InboundEvent).where(InboundEvent.status == status)
    if before_id is not None:
        stmt = stmt.where(InboundEvent.id < before_id)
    if source is not None:
        stmt = stmt.where(InboundEvent.source == source)
    stmt = stmt.order_by(InboundEvent.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def delete_older_than(session: AsyncSession, status: str, cutoff: datetime) -> int:
    """Drop events of a status received before ``cutoff``; returns how many."""
    stmt = delete(InboundEvent).where(InboundEvent.status == status, InboundEvent.received_at < cutoff)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def insert_nonce(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Record a nonce; False when ``(source, nonce)`` is already there."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(WebhookNonce)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "nonce"])
        .returning(WebhookNonce.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def delete_expired_nonces(session: AsyncSession, now: datetime) -> int:
    """Drop nonces past their expiry; returns how many."""
    result = await session.execute(delete(WebhookNonce).where(WebhookNonce.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)


_INSERT_ACCEPTED_PG = text(
    """
    INSERT INTO accepted_events (channel, source, external_id, payload, accepted_at, available_at, attempts)
    SELECT channel, source, external_id, payload::json, :now, :now, 0
    FROM unnest(:channels, :sources, :external_ids, :payloads) AS t(channel, source, external_id, payload)
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING source, external_id
    """
).bindparams(
    bindparam("channels", type_=ARRAY(String)),
    bindparam("sources", type_=ARRAY(String)),
    bindparam("external_ids", type_=ARRAY(String)),
    bindparam("payloads", type_=ARRAY(Text)),
    bindparam("now", type_=UtcDateTime()),
)
"""One statement with four array parameters: asyncpg encodes them in C, where a row-per-VALUES insert of a
thousand events would cost SQLAlchemy a Python call per value."""


def payload_json(payload: dict[str, Any]) -> str:
    """Compact JSON of an accepted event; orjson writes a SendGrid batch's thousand payloads in a tenth of the time.

    orjson refuses what the standard library writes (an integer past 64 bits that a provider's JSON may
    hold): that payload takes the standard path, with the same meaning.
    """
    try:
        return orjson.dumps(payload).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(payload, separators=(",", ":"))


async def insert_accepted(
    session: AsyncSession, now: datetime, rows: list[tuple[str, str, str, dict[str, Any]]]
) -> set[tuple[str, str]]:
    """Insert accepted events ``(channel, source, external_id, payload)`` in one statement; the new keys."""
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        channels, sources, external_ids, payloads = zip(*rows, strict=True)
        result = await session.execute(
            _INSERT_ACCEPTED_PG,
            {
                "channels": list(channels),
                "sources": list(sources),
                "external_ids": list(external_ids),
                "payloads": [payload_json(p) for p in payloads],
                "now": now,
            },
        )
    else:
        stmt = (
            sqlite_insert(AcceptedEvent)
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(AcceptedEvent.source, AcceptedEvent.external_id)
        )
        values = [
            {"channel": c, "source": s, "external_id": e, "payload": p, "accepted_at": now, "available_at": now}
            for c, s, e, p in rows
        ]
        result = await session.execute(stmt, values)
    return {(str(source), str(external_id)) for source, external_id in result.all()}


async def claim_accepted(session: AsyncSession, now: datetime, limit: int) -> list[AcceptedEvent]:
    """The oldest events ready to apply, locked so other workers skip them (PostgreSQL)."""
    stmt = (
        select(AcceptedEvent)
        .where(AcceptedEvent.available_at <= now)
        .order_by(AcceptedEvent.available_at, AcceptedEvent.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def delete_accepted(session: AsyncSession, ids: list[int]) -> None:
    """Forget applied events."""
    if ids:
        await session.execute(delete(AcceptedEvent).where(AcceptedEvent.id.in_(ids)))


async def accepted_backlog(session: AsyncSession, now: datetime) -> tuple[int, datetime | None]:
    """How many accepted events wait, and when the oldest ready one was accepted."""
    stmt = select(func.count(), func.min(AcceptedEvent.accepted_at)).where(AcceptedEvent.available_at <= now)
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest


async def claim_accepted_by_id(session: AsyncSession, event_id: int) -> list[AcceptedEvent]:
    """One accepted event, locked (none when it is gone or another worker holds it)."""
    stmt = select(AcceptedEvent).where(AcceptedEvent.id == event_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def postpone_accepted(
    session: AsyncSession, event_id: int, *, attempts: int, error: str, available_at: datetime
) -> None:
    """Record a failed attempt and when to try again."""
    await session.execute(
        sql_update(AcceptedEvent)
        .where(AcceptedEvent.id == event_id)
        .values(attempts=attempts, last_error=error, available_at=available_at)
    )
