"""Group commit for deferred mode: many requests' events stored by one INSERT and one COMMIT.

A webhook in deferred mode verifies and parses its request, then awaits ``Acceptor.accept``; it
answers 2xx only when that returns, i.e. after the commit that holds its events. While one commit
is in flight the next requests queue up, and the following commit takes them all: under load a
commit (and its WAL flush) is shared by many requests, at no added latency when the hub is idle.
A flusher keeps one database connection for as long as requests keep waiting, so a busy period pays
one pool check-out (and its liveness ping, two round trips) instead of one per commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.errors import ServiceUnavailable
from hub.inbox import codec, repository

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
MAX_ROWS_PER_COMMIT = 5000
"""Bounds one statement and one transaction; a request's events always share one commit."""


@dataclass(frozen=True)
class Acceptance:
    """One event to accept: the applier that will take it and its dedupe key."""

    channel: str
    event: Any
    source: str
    external_id: str


@dataclass(frozen=True)
class Accepted:
    """What one request's events became: new, or already waiting (a redelivery)."""

    accepted: int
    duplicates: int


@dataclass
class _Waiting:
    items: Sequence[Acceptance]
    done: asyncio.Future[Accepted] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class AcceptorStats:
    """Counters for /metrics and the benchmark: how many requests each commit carried."""

    commits: int = 0
    requests: int = 0
    rows: int = 0


Sessions = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""A session per commit."""


class Acceptor:
    """Stores accepted events with group commit; one per process.

    ``busy_period()`` is entered by a flusher when requests are waiting and left when none are; it
    yields the sessions of that period's commits (the composition root puts them all on one
    connection on PostgreSQL, and gives each its own write turn on SQLite).
    """

    def __init__(
        self,
        busy_period: Callable[[], AbstractAsyncContextManager[Sessions]],
        on_commit: Callable[[int, int], None] | None = None,
        *,
        commits_in_flight: int = 1,
    ) -> None:
        self._busy_period = busy_period
        self._on_commit = on_commit
        self._waiting: list[_Waiting] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._commits_in_flight = commits_in_flight
        self.stats = AcceptorStats()

    async def accept(self, items: Sequence[Acceptance]) -> Accepted:
        """Store ``items`` durably (committed when this returns); 503 when the database fails."""
        if not items:
            return Accepted(0, 0)
        waiting = _Waiting(items)
        self._waiting.append(waiting)
        if len(self._flushers) < self._commits_in_flight:
            self._flushers.add(asyncio.create_task(self._flush_while_waiting()))
        # Shielded: a client that hangs up must not cancel a commit other requests share.
        return await asyncio.shield(waiting.done)

    async def drain(self) -> None:
        """Wait for the commits in flight (shutdown)."""
        if self._flushers:
            await asyncio.wait(list(self._flushers))

    async def _flush_while_waiting(self) -> None:
        try:
            while self._waiting:
                entered = False
                try:
                    async with self._busy_period() as sessions:
                        entered = True
                        await self._commit_while_waiting(sessions)
                except Exception as exc:
                    if entered:  # every group taken was answered; only giving the connection back failed
                        log.warning("releasing the acceptor's connection failed: %s", type(exc).__name__)
                    elif self._waiting:  # no connection to be had: the next requests are answered 503, not held
                        self._refuse(self._take_group(), exc)
        finally:
            # In the same step as the last look at the queue, not in a done-callback a loop turn later: a request
            # queued in between would see this flusher still counted, start none, and wait for a commit that
            # never comes.
            flusher = asyncio.current_task()
            if flusher is not None:
                self._flushers.discard(flusher)

    async def _commit_while_waiting(self, sessions: Sessions) -> None:
        """Commit group after group, answering each; returns when none wait or after a failed commit."""
        while self._waiting:
            group = self._take_group()
            try:
                inserted = await self._commit(sessions, group)
            except Exception as exc:  # every waiting request must be answered, whatever failed
                self._refuse(group, exc)
                return  # the connection may be what failed: the next group starts on a fresh one
            for waiting in group:
                waiting.done.set_result(share_of(waiting.items, inserted))

    @staticmethod
    def _refuse(group: list[_Waiting], exc: Exception) -> None:
        log.warning("accepting %d requests' events failed: %s", len(group), type(exc).__name__)
        for waiting in group:
            waiting.done.set_exception(
                ServiceUnavailable(
                    "the event could not be stored (database unavailable); retry later",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            )

    def _take_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        rows = 0
        while self._waiting and (not group or rows + len(self._waiting[0].items) <= MAX_ROWS_PER_COMMIT):
            waiting = self._waiting.pop(0)
            group.append(waiting)
            rows += len(waiting.items)
        return group

    async def _commit(self, sessions: Sessions, group: list[_Waiting]) -> set[tuple[str, str]]:
        items = [item for waiting in group for item in waiting.items]
        async with sessions() as session:
            inserted = await store(session, items)
            await session.commit()
        self.stats.commits += 1
        self.stats.requests += len(group)
        self.stats.rows += len(items)
        if self._on_commit is not None:
            self._on_commit(len(group), len(items))
        return inserted


async def store(session: AsyncSession, items: Sequence[Acceptance]) -> set[tuple[str, str]]:
    """Insert accepted events in the caller's transaction; the keys that were not already waiting.

    Rows go in key order: two commits in flight that carry the same keys (a provider's concurrent
    redeliveries) then wait for each other in the same order and never deadlock.
    """
    ordered = sorted(items, key=lambda item: (item.source, item.external_id))
    rows = [(item.channel, item.source, item.external_id, codec.encode(item.event)) for item in ordered]
    return await repository.insert_accepted(session, clock.now(), rows)


def share_of(items: Sequence[Acceptance], inserted: set[tuple[str, str]]) -> Accepted:
    """A key inserted by this commit counts once: for the first request that carried it."""
    accepted = 0
    for item in items:
        key = (item.source, item.external_id)
        if key in inserted:
            inserted.discard(key)
            accepted += 1
    return Accepted(accepted=accepted, duplicates=len(items) - accepted)
