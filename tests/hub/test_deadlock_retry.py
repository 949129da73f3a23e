"""A real PostgreSQL deadlock: the victim's work is rolled back to its savepoint and run again."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from hub.db import create_engine, create_sessionmaker, retry_transient, session_scope
from tests.pg_waits import backend_pid, until_a_backend_waits


async def test_deadlock_victim_is_retried_and_both_finish(pg_database: str) -> None:
    engine = create_engine(pg_database)
    sessions = create_sessionmaker(engine)
    async with session_scope(sessions) as setup:
        await setup.execute(text("CREATE TABLE IF NOT EXISTS deadlock_probe (id int PRIMARY KEY, n int)"))
        await setup.execute(text("TRUNCATE deadlock_probe"))
        await setup.execute(text("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"))
    both_hold_first_row = asyncio.Barrier(2)
    runs = {"a": 0, "b": 0}

    async def transfer(name: str, first: int, second: int) -> None:
        async with session_scope(sessions) as session:

            async def work() -> None:
                runs[name] += 1
                await session.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": first})
                if runs[name] == 1:
                    await both_hold_first_row.wait()  # make the lock cycle certain on the first run
                await session.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": second})

            await retry_transient(session, work)

    try:
        await asyncio.wait_for(asyncio.gather(transfer("a", 1, 2), transfer("b", 2, 1)), timeout=30)
        async with sessions() as session:
            rows = dict((await session.execute(text("SELECT id, n FROM deadlock_probe"))).all())
        assert rows == {1: 2, 2: 2}  # each transfer counted exactly once
        assert sorted(runs.values()) == [1, 2]  # exactly one of them was the victim and ran again
    finally:
        async with session_scope(sessions) as cleanup:
            await cleanup.execute(text("DROP TABLE IF EXISTS deadlock_probe"))
        await engine.dispose()


async def test_sqlite_runs_work_directly(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    async with session_scope(create_sessionmaker(engine)) as session:
        assert await retry_transient(session, lambda: asyncio.sleep(0, result=42)) == 42
    await engine.dispose()


def test_only_deadlocks_and_serialization_failures_are_transient() -> None:
    from sqlalchemy.exc import DBAPIError

    from hub.db import is_transient

    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    assert is_transient(DBAPIError("x", {}, Orig("40P01")))
    assert is_transient(DBAPIError("x", {}, Orig("40001")))
    assert not is_transient(DBAPIError("x", {}, Orig("23505")))


async def test_lock_keys_holds_every_key_until_commit_and_blocks_a_second_taker(pg_database: str) -> None:
    from hub.db import advisory_key, lock_keys

    engine = create_engine(pg_database)
    sessions = create_sessionmaker(engine)
    keys = ["contact:7", "call:CA1", "contact:3"]
    try:
        async with sessions() as holder, sessions() as other:
            await lock_keys(holder, keys)
            held = (
                await holder.execute(
                    text(
                        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
                        " WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
                    )
                )
            ).scalars()
            assert {int(v) & 0xFFFFFFFFFFFFFFFF for v in held} == {advisory_key(k) & 0xFFFFFFFFFFFFFFFF for k in keys}
            # Another transaction asking for one of them waits (PostgreSQL shows it waiting) until the holder commits.
            taker = asyncio.create_task(lock_keys(other, ["call:CA1"]))
            await until_a_backend_waits(holder, blocked_by=await backend_pid(holder), what="the second taker")
            assert not taker.done()
            await holder.commit()
            await asyncio.wait_for(taker, timeout=10)
            await other.commit()
    finally:
        await engine.dispose()
