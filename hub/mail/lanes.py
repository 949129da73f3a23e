"""The lanes of one ``send_due`` batch and the group-commit writer that records their outcomes.

Why this sends each message at most once, and loses none, is argued in ``hub.mail.sender``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, and_, case, exists, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from hub import clock
from hub.config import Settings
from hub.db import session_scope
from hub.email.models import EmailMessage, Suppression
from hub.mail.links import LinkMaker
from hub.mail.outcomes import record_unsent, sent_entry
from hub.mail.throttle import Throttle, recipient_domain
from hub.mail.transport import SendOutcome, Transport
from hub.mail.wire import raw_for
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

log = logging.getLogger(__name__)

LINGER_SECONDS = 0.01
"""How long the writer waits for the other lanes' requests before committing what it has."""
_MESSAGES = cast(Table, EmailMessage.__table__)
"""Core statements in the hot path: the ORM's bulk-update machinery cost more than the SQL itself."""
_SUPPRESSIONS = cast(Table, Suppression.__table__)


@lru_cache(maxsize=256)
def _envelope_address(sender: str) -> str:
    return parseaddr(sender)[1]


@dataclass
class _Sent:
    """A message a lane sent, and what became of it (not yet recorded)."""

    message: EmailMessage
    outcome: SendOutcome
    handed_over_at: datetime


@dataclass
class _Request:
    """One lane's ask of the writer: record ``done`` and hand ``take`` over, in one transaction."""

    done: _Sent | None
    take: EmailMessage | None
    future: asyncio.Future[datetime | None]
    """Resolves to the hand-over time when ``take`` may be sent, None when it may not."""


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
        self.sequence_ids: set[int] = set()
        self.tally: Counter[str] = Counter()
        """What the committed transactions recorded, by ``SendReport`` field (``sent``, ``retried``, ...)."""
        self._stopping = asyncio.Event()
        self._waiting: list[_Request] = []
        self._arrived = asyncio.Event()
        self._writer = asyncio.Lock()
        self._running = 0
        self._writer_sessions = sessions
        self._connection: AsyncConnection | None = None

    def stop(self) -> None:
        """Take no new message; what is on the wire still finishes and is recorded."""
        self._stopping.set()

    async def lanes(self, count: int, deadline: datetime) -> None:
        """Run ``count`` lanes until the batch is sent (or stopped); re-raise the first lane's error."""
        self._running = count
        async with _one_connection(self.sessions) as (self._connection, self._writer_sessions):
            results = await asyncio.gather(*(self._lane(deadline) for _ in range(count)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _lane(self, deadline: datetime) -> None:
        done: _Sent | None = None
        try:
            while True:
                take = await self._next(deadline)
                handed_over_at = await self._commit(done, take)
                done = None
                if take is None:
                    return
                if handed_over_at is None:
                    continue  # suppressed, or another worker owns the row now
                outcome = await self._send(take, handed_over_at)
                done = _Sent(take, outcome, handed_over_at)
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

    async def _commit(self, done: _Sent | None, take: EmailMessage | None) -> datetime | None:
        """Record ``done`` and hand ``take`` over, group-committed with the other lanes' waiting requests."""
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
        """Wait (briefly) until every running lane has a request in, so one transaction serves them all.

        The lanes' sends started together finish together; a transaction costs far more CPU than the wait.
        """
        deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
        while len(self._waiting) < self._running and not self._stopping.is_set():
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _send(self, message: EmailMessage, handed_over_at: datetime) -> SendOutcome:
        try:
            raw = raw_for(message, self.settings, self.links, handed_over_at)
        except Exception as exc:  # a body that cannot be encoded fails this message only
            log.warning("message %d could not be built: %s", message.id, type(exc).__name__)
            return SendOutcome("failed", None, f"could not build the message: {type(exc).__name__}")
        envelope_from = _envelope_address(message.sender or self.settings.mail_from)
        return await self.transport.send(raw, sender=envelope_from, recipient=message.recipient)

    async def _write(self, batch: list[_Request]) -> None:
        """One transaction for the whole batch; every request's future is settled, whatever happens."""
        now = clock.now()
        tally: Counter[str] = Counter()
        finished = [r.done for r in batch if r.done is not None]
        takes = [r.take for r in batch if r.take is not None]
        try:
            async with self._transaction(finished) as db:
                handed = await self._write_in(db, finished, takes, now, tally)
        except BaseException as exc:
            self.pending.extendleft(takes)  # released later only if still merely claimed (compare-and-set)
            for request in batch:
                if isinstance(exc, Exception):
                    request.future.set_exception(exc)
                else:
                    request.future.cancel()
            return
        self.tally.update(tally)
        for request in batch:
            ok = request.take is not None and request.take.id in handed
            request.future.set_result(now if ok else None)

    @contextlib.asynccontextmanager
    async def _transaction(self, finished: list[_Sent]) -> AsyncIterator[AsyncSession | AsyncConnection]:
        """A plain transaction on the held connection, or a session when the batch writes timeline entries
        or hard bounces (the before-commit hooks react to those; with nothing written they do nothing)."""
        if self._connection is not None and not any(_needs_session(item) for item in finished):
            async with self._connection.begin():
                yield self._connection
            return
        async with session_scope(self._writer_sessions) as session:
            yield session

    async def _write_in(
        self,
        db: AsyncSession | AsyncConnection,
        finished: list[_Sent],
        takes: list[EmailMessage],
        now: datetime,
        tally: Counter[str],
    ) -> set[int]:
        """Record ``finished`` and hand ``takes`` over in the open transaction; the ids handed over."""
        sent: defaultdict[tuple[datetime, int | None], list[int]] = defaultdict(list)
        entries: list[TimelineEntry] = []
        for item in finished:
            message, outcome = item.message, item.outcome
            if message.sequence_id is not None:
                self.sequence_ids.add(message.sequence_id)
            if outcome.status == "sent":
                sent[(item.handed_over_at, outcome.code)].append(message.id)
                if message.contact_id is not None:
                    entries.append(sent_entry(message, item.handed_over_at, now))
            else:
                await record_unsent(db, self.settings, message, outcome, now, tally)
        handed = await self._sent_and_handed_over(db, sent, takes, now, tally)
        if entries:
            assert isinstance(db, AsyncSession)  # _transaction gives a session when there are entries
            await timeline.append_many(db, entries)
        return handed

    async def _sent_and_handed_over(
        self,
        db: AsyncSession | AsyncConnection,
        sent: dict[tuple[datetime, int | None], list[int]],
        takes: list[EmailMessage],
        now: datetime,
        tally: Counter[str],
    ) -> set[int]:
        """ONE UPDATE: the sent rows marked ``sent``, the new ones handed over unless suppressed (checked
        again here) or no longer ours; returns the ids handed over."""
        c = _MESSAGES.c
        sent_ids = [message_id for group in sent.values() for message_id in group]
        take_ids = [m.id for m in takes]
        tally["sent"] += len(sent_ids)
        if not sent_ids and not take_ids:
            return set()
        # Also over ``unknown``: expire_stuck may have given up on a slow but live worker; the truth wins.
        recorded = and_(c.id.in_(sent_ids), c.status.in_(("sending", "unknown")))
        handed = and_(
            c.id.in_(take_ids),
            c.status == "sending",
            c.sending_since.is_(None),
            c.next_attempt_at == self.claimed_at,  # the claim is still ours
            ~exists().where(_SUPPRESSIONS.c.email == c.recipient),
        )
        as_sent: dict[str, Any] = {
            "status": "sent",
            "sent_at": _per_row({key[0]: ids for key, ids in sent.items()}, c.sent_at),
            "smtp_code": _per_row({key[1]: ids for key, ids in sent.items()}, c.smtp_code),
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
        result = await db.execute(stmt.returning(c.id, c.attempts))
        attempts: dict[int, int] = {row[0]: row[1] for row in result if row[0] not in sent_ids}
        for message in takes:
            if message.id in attempts:
                message.attempts = attempts[message.id]
        left = [m for m in takes if m.id not in attempts]
        if left:  # suppressed, or no longer ours (rare: a second look tells which)
            suppressed = await self._suppress(db, left)
            tally["suppressed"] += suppressed
            tally["lost_claim"] += len(left) - suppressed
        return set(attempts)

    async def _suppress(self, db: AsyncSession | AsyncConnection, messages: list[EmailMessage]) -> int:
        """Mark the suppressed ones of these claimed rows ``suppressed``; how many were."""
        found = await db.execute(
            select(_SUPPRESSIONS.c.email, _SUPPRESSIONS.c.reason, _SUPPRESSIONS.c.source).where(
                _SUPPRESSIONS.c.email.in_(sorted({m.recipient for m in messages}))
            )
        )
        held = {row.email: row for row in found}
        count = 0
        for message in messages:
            entry = held.get(message.recipient)
            if entry is None:
                continue
            result = await db.execute(
                self._owned([message.id])
                .values(
                    status="suppressed",
                    next_attempt_at=None,
                    last_error=f"not sent: address suppressed ({entry.reason}, {entry.source})"[:500],
                )
                .returning(_MESSAGES.c.id)
            )
            if result.first() is not None:
                count += 1
                log.info("message %d not sent: suppressed at send time", message.id)
        return count

    def _owned(self, ids: list[int]) -> Any:
        """An UPDATE of rows this worker claimed and has not handed over (compare-and-set on the claim)."""
        return update(_MESSAGES).where(
            _MESSAGES.c.id.in_(ids),
            _MESSAGES.c.status == "sending",
            _MESSAGES.c.sending_since.is_(None),
            _MESSAGES.c.next_attempt_at == self.claimed_at,
        )


def _per_row(values: dict[Any, list[int]], column: Any) -> Any:
    """One value for all rows (the usual case: one bound parameter), else a CASE over the row ids."""
    if len(values) == 1:
        return literal(next(iter(values)), column.type)
    return case(
        {message_id: literal(value, column.type) for value, ids in values.items() for message_id in ids},
        value=_MESSAGES.c.id,
    )


def _needs_session(item: _Sent) -> bool:
    return (item.outcome.status == "sent" and item.message.contact_id is not None) or item.outcome.hard_bounce


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
