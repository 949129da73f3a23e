"""A worker's batch takes its events' locks and inbox rows up front, and never commits a row no event recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from hub import accepted
from hub.accepted import apply_accepted
from hub.db import WHOLE_TRANSACTION_RETRIED, advisory_key, create_engine, create_sessionmaker, lock_keys
from hub.inbox import service as inbox
from hub.inbox.models import InboundEvent
from hub.privacy.rules import erased_key
from hub.timeline import service as timeline_service
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, start_hub, stopped_clock, truncate_all
from tests.webhooks.test_deferred_ingest import pending, settings_for
from tests.webhooks.test_email_events_http import NOW


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


async def _free(session: AsyncSession, key: str) -> bool:
    """Whether another transaction could take ``key`` now (it takes it until its own end)."""
    return bool(await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": advisory_key(key)}))


async def test_a_batch_locks_a_key_once_and_holds_it_until_its_transaction_ends(pg_database: str) -> None:
    engine = create_engine(pg_database)
    sessions = create_sessionmaker(engine)
    locks: list[Any] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "pg_advisory_xact_lock" in statement:
            locks.append(parameters)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessions() as batch:
            batch.info[WHOLE_TRANSACTION_RETRIED] = True
            await lock_keys(batch, ["call:a", "call:b"])
            await lock_keys(batch, ["call:b", "call:a"])  # both held already: no round trip
            await lock_keys(batch, ["call:a", "call:c"])  # only the new one
            assert len(locks) == 2
            async with sessions() as other:
                assert not any([await _free(other, k) for k in ("call:a", "call:b", "call:c")])
                await other.rollback()
            await batch.commit()
            async with sessions() as other:
                assert await _free(other, "call:a")  # the commit let it go...
                await other.rollback()
            await lock_keys(batch, ["call:a"])  # ...so the next transaction takes it again
            assert len(locks) == 3
            async with sessions() as other:
                assert not await _free(other, "call:a")
                await other.rollback()
            await batch.rollback()
    finally:
        await engine.dispose()


async def test_a_session_with_savepoints_locks_every_time(pg_database: str) -> None:
    """A savepoint's rollback lets its locks go, so outside a batch a held key is never assumed."""
    engine = create_engine(pg_database)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session, sessions() as other:
            savepoint = await session.begin_nested()
            await lock_keys(session, ["contact:1"])
            await savepoint.rollback()
            assert await _free(other, "contact:1")
            await other.rollback()
            await lock_keys(session, ["contact:1"])
            assert not await _free(other, "contact:1")
            await other.rollback()
            await session.rollback()
    finally:
        await engine.dispose()


async def test_a_batch_whose_event_left_its_inbox_row_unrecorded_is_applied_one_by_one(
    pg_database: str, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch stores every form's inbox row before applying them; an applier that skipped one (a bug) must not
    commit a row with no effect and drop its event: the batch is undone and each event applied on its own."""
    await truncate_all(pg_database)
    key = ec.generate_private_key(ec.SECP256R1())
    original = accepted.APPLIERS["form"]

    async def all_but_the_last(session: Any, events: list[Any], settings: Any) -> None:
        await original(session, events[:-1] if len(events) > 1 else events, settings)

    async for hub in start_hub(settings_for(pg_database, key, "deferred")):
        await hub.create_source(slug="website", name="Website")
        for n in range(3):
            response = await hub.client.post("/webhooks/forms/website", json={"email": f"lead{n}@example.com"})
            assert response.status_code == 202, response.text
        monkeypatch.setitem(accepted.APPLIERS, "form", all_but_the_last)
        report = await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)

        assert report.applied == 3 and not report.failed
        assert await pending(hub) == 0
        # The operator learns why a batch went one by one (the error's kind, never its text: it may quote a lead).
        assert "applying a batch of 3 accepted events failed (RuntimeError)" in caplog.text
        async with hub.session() as session:
            statuses = (await session.scalars(select(InboundEvent.status))).all()
            entries = await session.scalar(
                select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "form_submission")
            )
        assert sorted(statuses) == ["processed"] * 3
        assert entries == 3


class _Deadlock(Exception):
    sqlstate = "40P01"


async def test_a_form_whose_own_transaction_deadlocks_after_its_batch_failed_is_still_applied(
    pg_database: str, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed batch each event runs on its own, its form in a savepoint (retry_transient): a deadlock there
    runs the form again, which must not take the inbox row its first run stored for a redelivery's and drop it."""
    await truncate_all(pg_database)
    key = ec.generate_private_key(ec.SECP256R1())
    original = timeline_service.append
    calls = {"n": 0}

    async def failing_twice(session: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # the batch: a failure that sends it one by one
            raise RuntimeError("a bug in one event")
        if calls["n"] == 2:  # the event's own transaction: PostgreSQL picks its savepoint as a deadlock victim
            raise DBAPIError("INSERT ...", {}, _Deadlock())
        return await original(session, **kw)

    async for hub in start_hub(settings_for(pg_database, key, "deferred")):
        await hub.create_source(slug="website", name="Website")
        response = await hub.client.post("/webhooks/forms/website", json={"email": "lead@example.com"})
        assert response.status_code == 202, response.text
        monkeypatch.setattr(timeline_service, "append", failing_twice)
        report = await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)

        assert report.applied == 1 and not report.failed
        async with hub.session() as session:
            statuses = (await session.scalars(select(InboundEvent.status))).all()
            entries = await session.scalar(
                select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "form_submission")
            )
        assert (list(statuses), entries) == (["processed"], 1)


async def test_rows_stored_up_front_leave_redeliveries_and_erased_twins_to_be_found_as_duplicates(
    pg_database: str,
) -> None:
    await truncate_all(pg_database)
    engine = create_engine(pg_database)
    try:
        async with create_sessionmaker(engine)() as session:
            session.info[WHOLE_TRANSACTION_RETRIED] = True
            twin = inbox.InboxRow("form:w", erased_key("old"), "form_submission", "processed", {"erased": True})
            await inbox.record_row(session, twin)  # an event an erasure re-keyed
            first = inbox.InboxRow("form:w", "a", "form_submission", "processing", {"n": 1})
            again = inbox.InboxRow("form:w", "a", "form_submission", "processing", {"n": 2})
            old = inbox.InboxRow("form:w", "old", "form_submission", "processing", {"n": 3})
            await inbox.prerecord(session, [first, old, again])
            recorded = [await inbox.record_row(session, row) for row in (first, again, old)]
            inbox.all_prerecorded_taken(session)  # every row stored up front was taken

            assert not recorded[0].duplicate
            assert recorded[1].duplicate and recorded[1].existing is not None
            assert (recorded[1].existing.id, recorded[1].existing.payload) == (recorded[0].event_id, {"n": 1})
            assert recorded[2].duplicate and recorded[2].existing is not None
            assert recorded[2].existing.external_id == erased_key("old")
            await session.rollback()
    finally:
        await engine.dispose()
