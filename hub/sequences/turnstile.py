"""A turnstile in front of a sequence's row lock, so that step runners cannot starve a pause (PostgreSQL).

A step runner's batch share-locks the sequences it queues mail for, and a pause, a resume or the circuit
breaker waits for those batches by locking the sequence's row. But PostgreSQL lets a new share lock of a row
join the ones already held while a stronger lock waits for them: with two or more workers whose batches
overlap, a pause could wait until the campaign ran out of due steps. Advisory locks queue in order instead.
Once a pause waits for its exclusive lock, a batch's shared try fails, so that batch skips the sequence (as it
skips one a pause holds), and the pause goes in as soon as the batches already inside commit.

SQLite runs one writer at a time: nothing to do there.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import BigInteger, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import advisory_key, lock_keys


def _name(sequence_id: int) -> str:
    return f"sequence:{sequence_id}"


async def enter_alone(session: AsyncSession, sequence_ids: Iterable[int]) -> None:
    """Before locking these sequences' rows to change their status: wait for the batches inside, and keep new
    ones out until this transaction ends."""
    await lock_keys(session, [_name(sequence_id) for sequence_id in sequence_ids])


async def enter_together(session: AsyncSession, sequence_ids: Iterable[int]) -> set[int]:
    """A step runner batch's turn at these sequences, until it commits; never waits. Returns the ones it may not
    enter now: a pause, resume or circuit breaker is inside or waiting."""
    keys = {advisory_key(_name(sequence_id)): sequence_id for sequence_id in sequence_ids}
    if session.get_bind().dialect.name != "postgresql" or not keys:
        return set()
    rows = await session.execute(_TRY_SHARED, {"keys": list(keys)})
    return {keys[int(row[0])] for row in rows if not row[1]}


_TRY_SHARED = text("SELECT key, pg_try_advisory_xact_lock_shared(key) FROM unnest(:keys) AS key").bindparams(
    bindparam("keys", type_=ARRAY(BigInteger))
)
