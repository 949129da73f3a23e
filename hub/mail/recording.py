"""The writes of the send loop's lanes: record what was sent and hand the next messages over, atomically.

Why this keeps every message sent at most once and none lost is argued in ``hub.mail.sender``; these
writes only have to be atomic (one transaction for one group of lanes' requests) and compare-and-set on the
claim token.

Two ways to the same rows:

- ``PgRecorder`` (PostgreSQL, the usual case where every outcome is ``sent``): ONE statement on a held
  connection in autocommit, so one round trip is the whole transaction: the sent rows marked ``sent``,
  their ``email_sent`` timeline entries inserted, the next rows handed over. SQLAlchemy's statement
  building and its BEGIN and COMMIT round trips cost more than the statement itself.
- ``record_and_hand_over`` (any database, any outcome) inside a transaction the caller opened.

The ``email_sent`` entries are written as a record, not fed to the automation (``hub.automation``): they
name no rep, so they can never be a first touch, and sending a campaign is no reason to rescore its
recipients or bring them into the pipeline (that cost several milliseconds per message).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, and_, case, exists, insert, literal, null, or_, select, update
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.config import Settings
from hub.email.models import EmailMessage, Suppression
from hub.email.suppressions import recipient_hashes
from hub.mail.outcomes import NextStepsTiming, RetryTiming, as_stored, record_unsent, sent_entry_values
from hub.mail.transport import SendOutcome
from hub.sequences.enrollment import lock_enrollments
from hub.timeline.models import TimelineEntry

_MESSAGES = cast(Table, EmailMessage.__table__)
_SUPPRESSIONS = cast(Table, Suppression.__table__)
_TIMELINE = cast(Table, TimelineEntry.__table__)
_ENTRY_COLUMNS = ("contact_id", "kind", "source", "external_id", "data", "occurred_at")
_LOOKUP_CHUNK = 2000
"""Addresses and hashes per suppression look-up: asyncpg takes at most 32,767 parameters a statement."""


@dataclass
class Sent:
    """A message a lane handed to SMTP, and what became of it (not yet recorded)."""

    message: EmailMessage
    outcome: SendOutcome
    handed_over_at: datetime


# The sent rows (also over ``unknown``: expire_stuck may have given up on a slow but live worker; the truth
# wins), their timeline entries (with the address and subject as the row has them now, not as the lane read
# them: an erasure while the mail was on the wire has scrubbed them, and the entry must not bring them back;
# taken from the UPDATE, which waits for an erasure holding the row, or, for a row a provider's event already
# moved past 'sending' (delivered before the send was recorded), as the row is), then the hand-over: a
# compare-and-set on the claim token, unless the address is suppressed, in plain form or as the keyed hash an
# erasure keeps (checked again here; ``t.hashes`` is each row's hash under each accepted key, space-separated,
# computed in Python: the keys never reach the database). The two UPDATEs touch different rows.
# ``(status = 'sending') IS TRUE`` (status is never NULL) keeps the planner off the partial index of sending
# rows: its statistics usually say it is nearly empty (the last ANALYZE saw few rows being sent), so the
# planner would scan it, every claimed row of every worker, for each hand-over (3 ms at 2,000 claimed rows)
# instead of looking the handful of ids up by primary key.
_RECORD_AND_HAND_OVER = """
WITH sent AS (
    UPDATE email_messages AS m
    SET status = 'sent', sent_at = s.sent_at, smtp_code = s.code, next_attempt_at = NULL, last_error = NULL
    FROM unnest($1::bigint[], $2::timestamptz[], $3::integer[]) AS s (id, sent_at, code)
    WHERE m.id = s.id AND m.status IN ('sending', 'unknown')
    RETURNING m.id, m.recipient, m.subject
), entries AS (
    INSERT INTO timeline_entries (contact_id, kind, source, external_id, data, occurred_at, recorded_at)
    SELECT e.contact_id, e.kind, e.source, e.external_id,
        (e.data::jsonb - 'recipient' - 'subject') || jsonb_strip_nulls(jsonb_build_object(
            'recipient', CASE WHEN sent.id IS NULL THEN row_now.recipient ELSE sent.recipient END,
            'subject', CASE WHEN sent.id IS NULL THEN row_now.subject ELSE sent.subject END)),
        e.occurred_at, $4
    FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
        AS e (contact_id, kind, source, external_id, data, occurred_at)
    LEFT JOIN sent ON sent.id = (e.data::jsonb ->> 'message_id')::bigint
    LEFT JOIN email_messages AS row_now ON row_now.id = (e.data::jsonb ->> 'message_id')::bigint
)
UPDATE email_messages AS m
SET sending_since = $4, attempts = m.attempts + 1
FROM unnest($11::bigint[], $13::text[]) AS t (id, hashes)
WHERE m.id = t.id AND (m.status = 'sending') IS TRUE AND m.sending_since IS NULL AND m.next_attempt_at = $12
    AND NOT EXISTS (
        SELECT 1 FROM suppressions AS x WHERE x.email = ANY (ARRAY[m.recipient::text] || string_to_array(t.hashes, ' '))
    )
RETURNING m.id, m.attempts
"""


class PgRecorder:
    """``record_and_hand_over`` for batches where every outcome is ``sent``, as one autocommit statement."""

    def __init__(self, connection: asyncpg.Connection[Any], keys: Sequence[str]) -> None:
        self._connection = connection
        """A connection held for the batch: outside a transaction, each statement commits by itself."""
        self._keys = keys
        """The hub's accepted secret keys, for the hashed suppressions of erased contacts."""

    @classmethod
    async def of(cls, connection: AsyncConnection, *, keys: Sequence[str]) -> PgRecorder | None:
        """A recorder on the driver connection under ``connection``, when it is asyncpg (PostgreSQL)."""
        if connection.dialect.name != "postgresql":
            return None
        driver = (await connection.get_raw_connection()).driver_connection
        return cls(driver, keys) if isinstance(driver, asyncpg.Connection) else None

    async def write(
        self,
        finished: Sequence[Sent],
        takes: Sequence[EmailMessage],
        claimed_at: datetime,
        now: datetime,
        *,
        in_transaction: bool = False,
    ) -> dict[int, int]:
        """Record ``finished`` (all ``sent``) and hand ``takes`` over, committed by itself unless
        ``in_transaction`` (a transaction already open on this connection); the attempts of each row handed over."""
        if in_transaction and not self._connection.is_in_transaction():
            raise RuntimeError("the send loop's writer expected an open transaction on its connection")
        entries = [sent_entry_values(s.message, s.handed_over_at) for s in finished if s.message.contact_id is not None]
        columns: list[list[Any]] = [[entry[name] for entry in entries] for name in _ENTRY_COLUMNS]
        columns[4] = [json.dumps(data) for data in columns[4]]
        try:
            rows = await self._connection.fetch(
                _RECORD_AND_HAND_OVER,
                [s.message.id for s in finished],
                [s.handed_over_at for s in finished],
                [s.outcome.code for s in finished],
                now,
                *columns,
                [m.id for m in takes],
                claimed_at,
                [" ".join(recipient_hashes(self._keys, m.recipient)) for m in takes],
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise _as_sqlalchemy_error(exc) from exc
        return {row[0]: row[1] for row in rows}


def _as_sqlalchemy_error(exc: BaseException) -> DatabaseError:
    """The error SQLAlchemy would have raised, so callers (and the jobs' retry on outages) see one kind."""
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    outage = not isinstance(exc, asyncpg.PostgresError) or sqlstate.startswith(("08", "57P"))
    kind = OperationalError if outage else DatabaseError
    return kind("record and hand over (send loop)", None, exc)


async def record_and_hand_over(
    db: AsyncSession | AsyncConnection,
    settings: Settings,
    finished: Sequence[Sent],
    takes: Sequence[EmailMessage],
    claimed_at: datetime,
    now: datetime,
    tally: Counter[str],
    recorder: PgRecorder | None = None,
    *,
    keys: Sequence[str],
    retry_at: RetryTiming | None = None,
    next_steps_at: NextStepsTiming | None = None,
) -> dict[int, int]:
    """Record ``finished`` (any outcome, at least one not ``sent``) and hand ``takes`` over in the open
    transaction; the attempts of each row handed over. ``db`` is a session when a hard bounce is among them
    (the email-event path). ``recorder`` (PostgreSQL) writes the sent rows and the hand-over on ``db``'s
    connection, inside the transaction the unsent outcomes opened. ``keys`` are the hub's accepted secret keys
    (hashed suppressions); ``retry_at`` times retries (their sequences' send windows), and ``next_steps_at`` puts
    off the next steps of retried sequence emails (one statement for them all)."""
    sent: list[Sent] = []
    retried: list[tuple[EmailMessage, datetime]] = []
    if next_steps_at is not None:
        # A retry writes its message, then (next_steps_at) its enrollment; a stop the other way round: their rows
        # are locked in the stop's order first, or the two deadlock (and the stop fails on every attempt).
        retrying = [i.message.enrollment_id for i in finished if i.outcome.status == "retry"]
        await lock_enrollments(db, (enrollment_id for enrollment_id in retrying if enrollment_id is not None))
    for item in finished:
        if item.outcome.status == "sent":
            sent.append(item)
            continue
        due = await record_unsent(db, settings, item.message, item.outcome, now, tally, retry_at=retry_at)
        if due is not None and item.message.enrollment_id is not None:
            retried.append((item.message, due))
    if retried and next_steps_at is not None:
        await next_steps_at(db, retried)
    tally["sent"] += len(sent)
    if recorder is not None and len(sent) < len(finished):
        return await recorder.write(sent, takes, claimed_at, now, in_transaction=True)
    handed, stored = await _sent_and_handed_over(db, sent, takes, claimed_at, now, keys)
    if missing := [s.message.id for s in sent if s.message.id not in stored]:  # a provider's event came first
        stored |= await _address_and_subject(db, missing)
    entries = [
        as_stored(sent_entry_values(s.message, s.handed_over_at), *stored[s.message.id]) | {"recorded_at": now}
        for s in sent
        if s.message.id in stored and s.message.contact_id is not None
    ]
    if entries:
        await db.execute(insert(_TIMELINE), entries)
    return handed


async def _sent_and_handed_over(
    db: AsyncSession | AsyncConnection,
    sent: Sequence[Sent],
    takes: Sequence[EmailMessage],
    claimed_at: datetime,
    now: datetime,
    keys: Sequence[str],
) -> tuple[dict[int, int], dict[int, tuple[str, str | None]]]:
    """ONE UPDATE: the sent rows marked ``sent``, the new ones handed over (as in ``_RECORD_AND_HAND_OVER``); the
    attempts of each row handed over, and the address and subject of each row it marked sent."""
    c = _MESSAGES.c
    sent_ids = [s.message.id for s in sent]
    take_ids = [m.id for m in takes]
    if not sent_ids and not take_ids:
        return {}, {}
    recorded = and_(c.id.in_(sent_ids), c.status.in_(("sending", "unknown")))
    hashes = {m.id: recipient_hashes(keys, m.recipient) for m in takes}
    # One expression per key: each row's hash under it (usually one parameter, see _per_row).
    hashed = [
        _per_row({i: h[n] for i, h in hashes.items()}, _SUPPRESSIONS.c.email) for n in range(len(keys) if hashes else 0)
    ]
    handed = and_(
        c.id.in_(take_ids),
        c.status == "sending",
        c.sending_since.is_(None),
        c.next_attempt_at == claimed_at,
        ~exists().where(_SUPPRESSIONS.c.email.in_([c.recipient, *hashed])),
    )
    as_sent: dict[str, Any] = {
        "status": "sent",
        "sent_at": _per_row({s.message.id: s.handed_over_at for s in sent}, c.sent_at),
        "smtp_code": _per_row({s.message.id: s.outcome.code for s in sent}, c.smtp_code),
        "next_attempt_at": null(),
        "last_error": null(),
    }
    as_handed: dict[str, Any] = {"sending_since": literal(now, c.sending_since.type), "attempts": c.attempts + 1}
    if not take_ids:
        stmt = update(_MESSAGES).where(recorded).values(**as_sent)
    elif not sent_ids:
        stmt = update(_MESSAGES).where(handed).values(**as_handed)
    else:
        is_sent = c.id.in_(sent_ids)
        values = {name: case((is_sent, value), else_=c[name]) for name, value in as_sent.items()}
        values |= {name: case((is_sent, c[name]), else_=value) for name, value in as_handed.items()}
        stmt = update(_MESSAGES).where(or_(recorded, handed)).values(**values)
    rows = (await db.execute(stmt.returning(c.id, c.attempts, c.recipient, c.subject))).all()
    were_sent = set(sent_ids)
    attempts = {row[0]: row[1] for row in rows if row[0] not in were_sent}
    return attempts, {row[0]: (row[2], row[3]) for row in rows if row[0] in were_sent}


async def _address_and_subject(db: AsyncSession | AsyncConnection, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """The address and subject these rows have now."""
    if not ids:
        return {}
    c = _MESSAGES.c
    rows = await db.execute(select(c.id, c.recipient, c.subject).where(c.id.in_(ids)))
    return {row[0]: (row[1], row[2]) for row in rows}


def _per_row(values: dict[int, Any], column: Any) -> Any:
    """One value for all rows (the usual case: one bound parameter), else a CASE over the row ids (rows not
    named get NULL)."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return literal(next(iter(distinct)), column.type)
    return case({message_id: literal(value, column.type) for message_id, value in values.items()}, value=_MESSAGES.c.id)


async def mark_suppressed(
    db: AsyncSession | AsyncConnection, messages: Sequence[EmailMessage], claimed_at: datetime, *, keys: Sequence[str]
) -> list[int]:
    """Of these claimed rows (not handed over), mark the ones whose address is suppressed, in plain form or
    (an erased contact's) as the keyed hash under one of ``keys``; their ids."""
    names = {m.id: [m.recipient, *recipient_hashes(keys, m.recipient)] for m in messages}
    wanted = sorted({name for each in names.values() for name in each})
    held: dict[str, Any] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):  # a batch times the keys could pass the driver's limit
        found = await db.execute(
            select(_SUPPRESSIONS.c.email, _SUPPRESSIONS.c.reason, _SUPPRESSIONS.c.source).where(
                _SUPPRESSIONS.c.email.in_(wanted[start : start + _LOOKUP_CHUNK])
            )
        )
        held.update((row.email, row) for row in found)
    marked = []
    for message in messages:
        entry = next((held[name] for name in names[message.id] if name in held), None)
        if entry is None:
            continue
        result = await db.execute(
            update(_MESSAGES)
            .where(
                _MESSAGES.c.id == message.id,
                _MESSAGES.c.status == "sending",
                _MESSAGES.c.sending_since.is_(None),
                _MESSAGES.c.next_attempt_at == claimed_at,  # still ours, not handed over
            )
            .values(
                status="suppressed",
                next_attempt_at=None,
                last_error=f"not sent: address suppressed ({entry.reason}, {entry.source})"[:500],
            )
            .returning(_MESSAGES.c.id)
        )
        if result.first() is not None:
            marked.append(message.id)
    return marked
