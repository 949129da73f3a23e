"""Poll PostgreSQL, with a deadline, until a backend waits for a lock: the race a test sets up has begun."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

_CLEAR_SNAPSHOT = text("SELECT pg_stat_clear_snapshot()")
_BLOCKED_BY = text("SELECT count(*) FROM pg_stat_activity WHERE CAST(:pid AS int) = ANY(pg_blocking_pids(pid))")
_ANY_LOCK_WAIT = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def until_a_backend_waits(
    probe: AsyncSession | AsyncConnection,
    *,
    blocked_by: int | None = None,
    what: str = "a lock",
    seconds: float = 10,
    or_done: asyncio.Future[Any] | None = None,
) -> None:
    """Until some backend waits for a lock held by ``blocked_by`` (a backend pid), or for any lock in this database;
    or until ``or_done`` (the task that might wait) is done without having to.

    ``probe`` may be inside a transaction it must keep open (it holds the lock): PostgreSQL reads
    pg_stat_activity once per transaction and keeps that snapshot, so each poll clears it first. Without
    that, a first poll that came before the waiter would be the answer for the whole deadline.
    """
    query, params = (_ANY_LOCK_WAIT, {}) if blocked_by is None else (_BLOCKED_BY, {"pid": blocked_by})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while or_done is None or not or_done.done():
        await probe.execute(_CLEAR_SNAPSHOT)
        if (await probe.execute(query, params)).scalar_one():
            return
        assert loop.time() < deadline, f"nothing came to wait for {what} within {seconds:g} s"
        await asyncio.sleep(0.01)


async def backend_pid(probe: AsyncSession | AsyncConnection) -> int:
    pid: int = (await probe.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid
