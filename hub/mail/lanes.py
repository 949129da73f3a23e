"""The lanes of one ``send_due`` batch and the group-commit writer that records their outcomes.

Why this sends each message at most once, and loses none, is argued in ``hub.mail.sender``; the writes
themselves are in ``hub.mail.recording``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from functools import lru_cache
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from hub import clock
from hub.config import Settings
from hub.db import is_transient, session_scope
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.recording import PgRecorder, Sent, mark_suppressed, record_and_hand_over
from hub.mail.send_windows import SendWindows
from hub.mail.throttle import Throttle, recipient_domain
from hub.mail.transport import SendOutcome, Transport
from hub.mail.wire import raw_for

log = logging.getLogger(__name__)

T = TypeVar("T")
LINGER_SECONDS = 0.003
"""How long the writer waits for the other lanes' requests before committing what it has."""


@lru_cache(maxsize=256)
def _envelope_address(sender: str) -> str:
    return parseaddr(sender)[1]


@dataclass
class _Request:
    """One lane's ask of the writer: record ``done`` and hand ``take`` over, in one transaction."""

    done: Sent | None
    take: EmailMessage | None
    future: asyncio.Future[datetime | None]
    """Resolves to the hand-over time when ``take`` may be sent, None when it may not."""


@dataclass
class _Built:
    """A message's bytes, built before its hand-over (while the other lanes are on the wire)."""

    raw: bytes | None
    failure: SendOutcome | None = None
    """Set instead of ``raw`` when the message cannot be built: it fails without being sent."""


class SendBatch:
    """One ``send_due`` batch: the claimed rows, the lanes sending them, the writer recording them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        transport: Transport,
        throttle: Throttle,
        settings: Settings,
        links: LinkMaker,
        claimed_at: datetime,
        pending: deque[EmailMessage],
    ) -> None:
        self.sessions = sessions
        self.transport = transport
        self.throttle = throttle
        self.settings = settings
        self.links = links
        self.claimed_at = claimed_at
        self.pending = pending
        """Claimed rows no lane has taken yet (released at the end)."""
        self.failing_sequence_ids: set[int] = set()
        """Sequences with a message that was not sent in this batch (their circuit breakers are checked)."""
        self.tally: Counter[str] = Counter()
        """What the committed transactions recorded, by ``SendReport`` field (``sent``, ``retried``, ...)."""
        self.windows = SendWindows(tuple(pending), settings.default_time_zone)
        """The send windows a retry of a sequence's message keeps to (read at the batch's first such retry)."""
        self._stopping = asyncio.Event()
        self._waiting: list[_Request] = []
        self._writer = asyncio.Lock()
        self._arrived = asyncio.Event()
        self._running = 0
        self._writer_sessions = sessions
        self._connection: AsyncConnection | None = None
        self._recorder: PgRecorder | None = None

    def stop(self) -> None:
        """Take no new message; what is on the wire still finishes and is recorded."""
        self._stopping.set()

    async def lanes(self, count: int, deadline: datetime) -> None:
        """Run ``count`` lanes until the batch is sent (or stopped); re-raise the first lane's error."""
        self._running = count
        async with _one_connection(self.sessions) as (self._connection, self._writer_sessions):
            if self._connection is not None:
                self._recorder = await PgRecorder.of(self._connection, keys=self.links.keys)
            results = await asyncio.gather(*(self._lane(deadline) for _ in range(count)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _lane(self, deadline: datetime) -> None:
        done: Sent | None = None
        try:
            while True:
                take = await self._next(deadline)
                built = self._build(take) if take is not None else None
                if take is None or built is None or built.raw is None:
                    handed_over_at = await self._commit(done, take)
                    done = None
                    if take is None or built is None:
                        return
                    if handed_over_at is not None and built.failure is not None:
                        done = Sent(take, built.failure, handed_over_at)
                    continue
                # The hand-over commits while SMTP opens the message's transaction (MAIL, RCPT, DATA); the content
                # goes out only once that commit says the message is ours to send (``Transport.send``'s ``go``).
                commit = asyncio.ensure_future(self._commit(done, take))
                done = None
                try:
                    outcome = await self._send(take, built.raw, go=_handed_over(commit))
                finally:
                    # The commit also records the previous outcome (and maybe other lanes' requests) on the batch's
                    # connection: it is not cancelled with the lane, and the lane (so the batch) ends after it.
                    await asyncio.wait([commit])
                handed_over_at = commit.result()
                if handed_over_at is None:
                    continue  # suppressed, or another worker owns the row now: nothing of it was sent
                if outcome is None:  # pragma: no cover - a committed hand-over always lets the transport go on
                    raise AssertionError(f"message {take.id} was handed over but not sent")
                done = Sent(take, outcome, handed_over_at)
        except BaseException:
            self.stop()  # the other lanes finish what they have on the wire, record it, and end
            raise
        finally:
            self._running -= 1
            self._arrived.set()

    async def _next(self, deadline: datetime) -> EmailMessage | None:
        """The next claimed row once the throttle lets it go; None when the batch is done or must stop."""
        if self._stopping.is_set() or not self.pending or clock.now() >= deadline:
            return None
        message = self.pending.popleft()
        wait = self.throttle.delay(recipient_domain(message.recipient))
        if wait > 0:
            with contextlib.suppress(TimeoutError):  # woken early by stop()
                await asyncio.wait_for(self._stopping.wait(), wait)
        if self._stopping.is_set() or clock.now() >= deadline:
            self.pending.appendleft(message)
            return None
        return message

    def _build(self, message: EmailMessage) -> _Built:
        """The bytes to send (dated now: the hand-over follows within milliseconds), or why there are none."""
        try:
            return _Built(raw_for(message, self.settings, self.links, clock.now()))
        except Exception as exc:  # a body that cannot be encoded fails this message only
            log.warning("message %d could not be built: %s", message.id, type(exc).__name__)
            return _Built(None, SendOutcome("failed", None, f"could not build the message: {type(exc).__name__}"))

    async def _send(self, message: EmailMessage, raw: bytes, *, go: Awaitable[bool]) -> SendOutcome | None:
        envelope_from = _envelope_address(message.sender or self.settings.mail_from)
        return await self.transport.send(raw, sender=envelope_from, recipient=message.recipient, go=go)

    async def _commit(self, done: Sent | None, take: EmailMessage | None) -> datetime | None:
        """Record ``done`` and hand ``take`` over, group-committed with the other lanes' waiting requests:
        whichever lane finds the writer free writes every request waiting at that moment."""
        if done is None and take is None:
            return None
        request = _Request(done, take, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._arrived.set()
        async with self._writer:
            if not request.future.done():
                await self._linger()
                batch, self._waiting = self._waiting, []
                await self._write(batch)
        return request.future.result()

    async def _linger(self) -> None:
        """Wait (briefly) until every running lane has a request in, so one transaction serves them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while len(self._waiting) < self._running and not self._stopping.is_set():
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _write(self, batch: list[_Request]) -> None:
        """One transaction for the whole batch; every request's future is settled, whatever happens."""
        now = clock.now()
        tally: Counter[str] = Counter()
        finished = [r.done for r in batch if r.done is not None]
        takes = [r.take for r in batch if r.take is not None]
        try:
            handed = await self._record(finished, takes, now, tally)
        except BaseException as exc:
            self.pending.extendleft(takes)  # released later only if still merely claimed (compare-and-set)
            for request in batch:
                if isinstance(exc, Exception):
                    request.future.set_exception(exc)
                else:
                    request.future.cancel()
            return
        tally["transactions"] += 1
        self.tally.update(tally)
        self.failing_sequence_ids.update(
            s.message.sequence_id for s in finished if s.message.sequence_id is not None and s.outcome.status != "sent"
        )
        for item in finished:
            if item.outcome.status == "unknown":
                log.warning(
                    "message %d was handed to SMTP but the relay's reply never came: status unknown", item.message.id
                )
        for message in takes:
            if message.id in handed:
                message.attempts = handed[message.id]
        for request in batch:
            ok = request.take is not None and request.take.id in handed
            request.future.set_result(now if ok else None)

    async def _record(
        self, finished: list[Sent], takes: list[EmailMessage], now: datetime, tally: Counter[str]
    ) -> dict[int, int]:
        """Record and hand over in one transaction (one statement when it can), then settle the rows that
        were not handed over: suppressed, or (rare) no longer ours."""
        if self._recorder is not None and all(s.outcome.status == "sent" for s in finished):
            recorder = self._recorder
            handed = await _again_if_victim(lambda: recorder.write(finished, takes, self.claimed_at, now))
            tally["sent"] += len(finished)
        else:
            retried = [s.message for s in finished if s.outcome.status == "retry"]
            if self.windows.unread_for(retried) or self.windows.zones_unread_for(retried):
                await self._read_windows(retried)

            async def record() -> dict[int, int]:
                counted: Counter[str] = Counter()  # an aborted attempt counts nothing
                async with self._transaction(finished) as db:
                    written = await record_and_hand_over(
                        db,
                        self.settings,
                        finished,
                        takes,
                        self.claimed_at,
                        now,
                        counted,
                        self._recorder,
                        keys=self.links.keys,
                        retry_at=self.windows.retry_at,
                        next_steps_at=self.windows.count_next_steps_from,
                    )
                tally.update(counted)
                return written

            handed = await _again_if_victim(record)
        left = [m for m in takes if m.id not in handed]
        if left:

            async def suppress() -> list[int]:
                async with self._transaction([]) as db:
                    return await mark_suppressed(db, left, self.claimed_at, keys=self.links.keys)

            suppressed = await _again_if_victim(suppress)
            for message_id in suppressed:
                log.info("message %d not sent: suppressed at send time", message_id)
            tally["suppressed"] += len(suppressed)
            tally["lost_claim"] += len(left) - len(suppressed)
        return handed

    async def _read_windows(self, retried: list[EmailMessage]) -> None:
        """Read the batch's send windows and zones (and the zones the steps after ``retried`` count days in), in a
        transaction of their own before the writes."""
        async with session_scope(self._writer_sessions) as session:
            if self.windows.unread_for(retried):
                await self.windows.read(session)
            await self.windows.read_zones(session, retried)

    @contextlib.asynccontextmanager
    async def _transaction(self, finished: list[Sent]) -> AsyncIterator[AsyncSession | AsyncConnection]:
        """A plain transaction on the held connection, or a session when a hard bounce is recorded (it goes
        through the email-event path, whose before-commit hooks react to it)."""
        if self._connection is not None and not any(s.outcome.hard_bounce for s in finished):
            async with self._connection.begin():
                yield self._connection
            return
        async with session_scope(self._writer_sessions) as session:
            yield session


def _handed_over(commit: asyncio.Future[datetime | None]) -> asyncio.Future[bool]:
    """Whether the hand-over in ``commit`` went through, as a future of its own: the transport may never await it
    (a refusal at MAIL or RCPT comes first), and a cancelled send must not cancel the commit, which also records
    the lane's previous outcome. A commit that failed says no (the lane gets its error from ``commit``)."""
    handed = asyncio.get_running_loop().create_future()

    def settle(done: asyncio.Future[datetime | None]) -> None:
        # Read even when nobody waits for the answer any more (the send was cancelled): an error is then retrieved
        # here, not reported by asyncio as never retrieved.
        went = not done.cancelled() and done.exception() is None and done.result() is not None
        if not handed.done():
            handed.set_result(went)

    commit.add_done_callback(settle)
    return handed


WRITE_ATTEMPTS = 5
"""How often the writer runs a transaction PostgreSQL aborted as a deadlock victim before giving up."""


async def _again_if_victim(write: Callable[[], Awaitable[T]]) -> T:
    """Run ``write`` (one whole transaction) again when PostgreSQL aborted it to break a deadlock.

    A pause, a stop or an erasure locks claimed rows of one sequence or contact in its own order while the
    writer records and hands over rows in another, and either can be the victim. The writer's transaction
    is rolled back whole, and it carries the outcomes of messages the relay already accepted: given up,
    they would turn ``unknown``. Running it again is safe: recording a ``sent`` is guarded by the row's
    status and a hand-over is a compare-and-set on the claim.
    """
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return await write()
        except DBAPIError as exc:
            if not is_transient(exc) or attempt == WRITE_ATTEMPTS:
                raise
            log.info("the send loop's writer lost a lock race (attempt %d); writing again", attempt)
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))  # noqa: S311 - jitter, not security
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


@contextlib.asynccontextmanager
async def _one_connection(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[AsyncConnection | None, async_sessionmaker[AsyncSession]]]:
    """One connection held for the batch (no pool check-out and pre-ping per transaction), and sessions on it."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        yield None, sessions
        return
    async with bind.connect() as connection:
        kw = {key: value for key, value in sessions.kw.items() if key != "bind"}
        yield connection, async_sessionmaker(connection, class_=sessions.class_, **kw)
