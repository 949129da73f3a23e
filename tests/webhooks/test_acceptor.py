"""The group committer's scheduling: every request that queues an event gets a commit and an answer.

Storage is replaced by a list here: what is under test is which commits run when, not the SQL
(tests/webhooks/test_deferred_ingest.py covers the acceptor against real databases)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from hub.inbox import acceptor as acceptor_module
from hub.inbox.acceptor import Acceptance, Acceptor


class _Session:
    async def commit(self) -> None:
        pass


@asynccontextmanager
async def _session() -> AsyncIterator[_Session]:
    yield _Session()


def _acceptance(key: str) -> Acceptance:
    return Acceptance("form", object(), "form:website", key)


async def test_a_request_queued_as_the_last_commit_ends_gets_its_own_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    stored: list[str] = []

    async def store(session: Any, items: list[Acceptance]) -> set[tuple[str, str]]:
        stored.extend(item.external_id for item in items)
        return {(item.source, item.external_id) for item in items}

    monkeypatch.setattr(acceptor_module, "store", store)
    period_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @asynccontextmanager
    async def busy_period() -> AsyncIterator[Callable[[], AbstractAsyncContextManager[_Session]]]:
        yield _session
        # The flusher found no one else waiting and is about to finish. A second request's body
        # arrives in this very step, before the flusher's task is done: it must not be left waiting.
        if not period_over.done():
            period_over.set_result(None)

    acceptor = Acceptor(busy_period, commits_in_flight=1)

    async def second_request() -> Any:
        await period_over
        return await acceptor.accept([_acceptance("second")])

    second = asyncio.create_task(second_request())
    await asyncio.sleep(0)  # the second request waits for its body
    first = await acceptor.accept([_acceptance("first")])
    answered = await asyncio.wait_for(second, timeout=5)
    assert (first.accepted, answered.accepted) == (1, 1)
    assert stored == ["first", "second"]
    await acceptor.drain()
    assert not acceptor._flushers
