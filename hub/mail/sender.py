"""The send loop: nothing sent twice, nothing lost.

A message row moves ``queued -> sending -> sent | failed | suppressed`` (or back to ``queued`` for a retry).
``sending`` has two phases, told apart by ``sending_since``:

1. **claimed** (``sending_since`` NULL, ``next_attempt_at`` = the claim time): ``send_due`` took the row in
   one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent workers never take the
   same row). Nothing has been sent; the claim time is the worker's claim token.
2. **handed over** (``sending_since`` set, ``attempts`` + 1): committed right before the message goes to
   SMTP, after the suppression list was checked again, as a compare-and-set on the claim token.

**Lanes.** The pool's N connections each get a lane: a coroutine that sends its messages one after the
other. Before a lane sends its next message it asks for ONE transaction that both records the outcome of
its previous message (with its ``email_sent`` timeline entry) and hands the next one over. Those requests
are group-committed: whichever lane finds the writer free takes every request waiting at that moment into
one transaction, while the other lanes' messages are still on the wire. So the database work of some
lanes overlaps the SMTP work of the others, and a transaction carries up to N outcomes and N hand-overs.
The writer lingers a few milliseconds for the lanes still sending (their sends started together and end
together): on a 2-core machine a transaction costs more CPU than SMTP, so fewer, fuller transactions win.
A transaction is one UPDATE (the sent rows marked ``sent``; the next rows handed over where no suppression
exists and the claim is still ours) on a connection held for the batch, through the ORM session only when
it writes timeline entries or a hard bounce (the before-commit hooks react to those).

**Why this is still exactly-once and bounded.** A lane's record-and-hand-over is atomic, so at every
committed state each lane has at most ONE message handed over without a recorded outcome: a SIGKILL
leaves at most N (``smtp_pool_size``) rows handed over, which ``expire_stuck`` marks ``unknown`` and never
re-sends; every other row is either recorded (its outcome committed before its claim could be released or
expire) or merely claimed, which ``expire_stuck`` (or ``_release``) puts back to ``queued``, safely, since
a row is only ever sent after its hand-over committed. Each outcome is committed before the lane sends
anything else (never at the end of a batch: Mautic #13070). Hand-over and release are both
compare-and-sets on the claim token with ``sending_since`` NULL, so a row ``expire_stuck`` released from a
live (slow) worker and claimed by another is handed over, and sent, by at most one of them.

A slow batch (throttled) stops taking new messages once half of HUB_SENDING_TIMEOUT_SECONDS has passed and
releases the rest. Cancellation (graceful shutdown) stops the lanes from taking new messages, lets the
messages on the wire finish and be recorded, and releases the rest before re-raising; a second cancel
abandons the wait (those rows become ``unknown`` later, as after a kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, and_, case, exists, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from hub import clock
from hub.config import Settings
from hub.db import session_scope
from hub.email import rules as email_rules
from hub.email import service as email_service
from hub.email.models import EmailMessage, Suppression
from hub.events import EmailEventReceived
from hub.mail.links import LinkMaker
from hub.mail.message import build_message, build_mime
from hub.mail.throttle import Throttle, recipient_domain
from hub.mail.transport import SendOutcome, Transport
from hub.sequences.breaker import check_breakers
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

log = logging.getLogger(__name__)

RETRY_JITTER = 0.1
"""A retry waits up to 10 % longer than its schedule says, so a relay's bad minute is not retried in lockstep."""
UNSUBSCRIBE_KINDS = frozenset({"sequence", "test"})
"""Kinds that carry List-Unsubscribe (besides any marketing message); a rep's alert does not."""
LINGER_SECONDS = 0.01
"""How long the writer waits for the other lanes' requests before committing what it has."""
_MESSAGES = cast(Table, EmailMessage.__table__)
"""Core statements in the hot path: the ORM's bulk-update machinery cost more than the SQL itself."""
_SUPPRESSIONS = cast(Table, Suppression.__table__)


@dataclass
class SendReport:
    """What one ``send_due`` run did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    hard_bounced: int = 0
    suppressed: int = 0
    released: int = 0
    """Claimed but given back to ``queued`` unsent (shutdown, or the batch ran long)."""
    lost_claim: int = 0
    """Claimed rows another worker took over after the claim expired; not sent by this one."""
    paused_sequences: list[int] = field(default_factory=list)


async def send_due(
    sessions: async_sessionmaker[AsyncSession],
    transport: Transport,
    throttle: Throttle,
    settings: Settings,
    links: LinkMaker,
    *,
    limit: int,
) -> SendReport:
    """Claim up to ``limit`` due messages and send them, recording each outcome before the next send."""
    report = SendReport()
    claimed_at = clock.now()
    async with session_scope(sessions) as session:
        claimed = await claim_due(session, claimed_at, limit)
    report.claimed = len(claimed)
    if not claimed:
        return report
    run = _Run(sessions, transport, throttle, settings, links, claimed_at, report, deque(claimed))
    deadline = claimed_at + timedelta(seconds=settings.sending_timeout_seconds / 2)
    lanes = asyncio.ensure_future(run.lanes(max(1, settings.smtp_pool_size), deadline))
    try:
        # Shielded: a cancel lets the messages already on the wire finish and be recorded.
        await asyncio.shield(lanes)
    except asyncio.CancelledError:
        run.stop()
        if not lanes.done():
            await _finish_in_flight(lanes)
        await asyncio.shield(_release(sessions, run.pending, claimed_at, report))
        raise
    except Exception:
        await _release(sessions, run.pending, claimed_at, report)
        raise
    await _release(sessions, run.pending, claimed_at, report)
    if run.sequence_ids:
        async with session_scope(sessions) as session:
            report.paused_sequences = await check_breakers(session, run.sequence_ids, settings, clock.now())
    return report


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[EmailMessage]:
    """Take up to ``limit`` due queued messages (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), oldest due first."""
    query = (
        select(EmailMessage.id)
        .where(EmailMessage.status == "queued", EmailMessage.next_attempt_at <= now)
        .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list((await session.scalars(query)).all())
    if not ids:
        return []
    claim = (
        update(EmailMessage)
        .where(EmailMessage.id.in_(ids), EmailMessage.status == "queued")
        .values(status="sending", sending_since=None, next_attempt_at=now)
        .returning(EmailMessage)
        .execution_options(synchronize_session=False)
    )
    position = {message_id: index for index, message_id in enumerate(ids)}
    return sorted((await session.scalars(claim)).all(), key=lambda m: position[m.id])


async def expire_stuck(session: AsyncSession, now: datetime, timeout_seconds: float) -> list[int]:
    """Settle rows a dead worker left in ``sending``: handed-over ones become ``unknown`` (never re-sent),
    claimed-but-untouched ones go back to ``queued``; returns the ids now ``unknown``."""
    cutoff = now - timedelta(seconds=timeout_seconds)
    released = await session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.status == "sending",
            EmailMessage.sending_since.is_(None),
            EmailMessage.next_attempt_at < cutoff,
        )
        .values(status="queued", next_attempt_at=now)
        .returning(EmailMessage.id)
        .execution_options(synchronize_session=False)
    )
    released_ids = list(released.scalars())
    unknown = await session.execute(
        update(EmailMessage)
        .where(EmailMessage.status == "sending", EmailMessage.sending_since < cutoff)
        .values(
            status="unknown",
            next_attempt_at=None,
            last_error="the worker stopped while handing this message to SMTP; it may or may not have been sent",
        )
        .returning(EmailMessage.id)
        .execution_options(synchronize_session=False)
    )
    unknown_ids = sorted(unknown.scalars())
    if released_ids:
        log.warning("%d claimed messages of a stopped worker were queued again (never sent)", len(released_ids))
    if unknown_ids:
        log.warning("messages %s were being handed to SMTP when their worker stopped: status unknown", unknown_ids)
    return unknown_ids


def unsubscribe_url_for(message: EmailMessage, links: LinkMaker) -> str | None:
    """The one-click URL a message carries in List-Unsubscribe, if it carries one."""
    if message.marketing or message.kind in UNSUBSCRIBE_KINDS:
        return links.unsubscribe_url(message.id, message.recipient)
    return None


def mime_for(message: EmailMessage, settings: Settings, links: LinkMaker, sent_at: datetime) -> MimeMessage:
    """The MIME message of an outbox row as the send loop hands it over (``sent_at`` is its Date), parsed."""
    return build_mime(message, **_build_options(message, settings, links, sent_at))


def raw_for(message: EmailMessage, settings: Settings, links: LinkMaker, sent_at: datetime) -> bytes:
    """The bytes the send loop hands to SMTP for an outbox row (``sent_at`` is its Date)."""
    return build_message(message, **_build_options(message, settings, links, sent_at))


def _build_options(message: EmailMessage, settings: Settings, links: LinkMaker, sent_at: datetime) -> dict[str, Any]:
    return {
        "mail_from": settings.mail_from,
        "unsubscribe_url": unsubscribe_url_for(message, links),
        "unsubscribe_mailto": settings.unsubscribe_mailto,
        "sent_at": sent_at,
        "company_name": settings.company_name,
        "company_address": settings.company_address,
    }


def retry_delay(attempts: int, schedule: Sequence[int], jitter: float) -> timedelta | None:
    """How long after attempt number ``attempts`` (1-based) to try again; None once the schedule is spent."""
    if attempts < 1 or attempts > len(schedule):
        return None
    return timedelta(minutes=schedule[attempts - 1] * (1 + jitter))


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


class _Run:
    """One ``send_due`` batch: the claimed rows, the lanes sending them, the writer recording them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        transport: Transport,
        throttle: Throttle,
        settings: Settings,
        links: LinkMaker,
        claimed_at: datetime,
        report: SendReport,
        pending: deque[EmailMessage],
    ) -> None:
        self.sessions = sessions
        self.transport = transport
        self.throttle = throttle
        self.settings = settings
        self.links = links
        self.claimed_at = claimed_at
        self.report = report
        self.pending = pending
        """Claimed rows no lane has taken yet (released at the end)."""
        self.sequence_ids: set[int] = set()
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
        for name, count in tally.items():
            setattr(self.report, name, getattr(self.report, name) + count)
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
                    entries.append(_sent_entry(message, item.handed_over_at, now))
            else:
                await _record_unsent(db, self.settings, message, outcome, now, tally)
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


def _sent_entry(message: EmailMessage, handed_over_at: datetime, now: datetime) -> TimelineEntry:
    return TimelineEntry(
        contact_id=message.contact_id,
        kind="email_sent",
        source="hub:email",
        external_id=f"message:{message.id}",
        data=_sent_data(message),
        occurred_at=handed_over_at,
        recorded_at=now,
    )


async def _record_unsent(
    db: AsyncSession | AsyncConnection,
    settings: Settings,
    message: EmailMessage,
    outcome: SendOutcome,
    now: datetime,
    tally: Counter[str],
) -> None:
    """A retry (back to ``queued`` with its next time) or a failure (with a hard bounce's suppression)."""
    delay = retry_delay(message.attempts, settings.send_retry_minutes, random.random() * RETRY_JITTER)  # noqa: S311
    if outcome.status == "retry" and delay is not None:
        await db.execute(
            update(_MESSAGES)
            .where(_MESSAGES.c.id == message.id, _MESSAGES.c.status.in_(("sending", "unknown")))
            .values(status="queued", next_attempt_at=now + delay, smtp_code=outcome.code, last_error=outcome.detail)
        )
        tally["retried"] += 1
        return
    if outcome.hard_bounce:
        assert isinstance(db, AsyncSession)  # _transaction gives a session for hard bounces
        await _record_hard_bounce(db, settings, message, outcome, now)
        tally["hard_bounced"] += 1
    detail = (
        outcome.detail if outcome.status == "failed" else f"gave up after {message.attempts} attempts: {outcome.detail}"
    )
    await db.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id == message.id)
        .values(status="failed", failed_at=now, smtp_code=outcome.code, next_attempt_at=None, last_error=detail[:500])
    )
    tally["failed"] += 1


async def _record_hard_bounce(
    session: AsyncSession, settings: Settings, message: EmailMessage, outcome: SendOutcome, now: datetime
) -> None:
    """The relay refused the address: the common email-event path suppresses it and puts it on the timeline."""
    event = EmailEventReceived(
        source="smtp",
        external_id=f"bounce:{message.id}:{message.attempts}",
        kind="bounced",
        provider_event=f"smtp_{outcome.code}",
        recipient=message.recipient,
        occurred_at=now,
        hub_message_id=message.id,
        bounce="hard",
        reason=outcome.detail,
        detail={"smtp_code": outcome.code},
    )
    thresholds = email_rules.Thresholds(
        machine_open_seconds=settings.machine_open_seconds,
        scanner_click_seconds=settings.scanner_click_seconds,
        open_collapse_seconds=settings.open_collapse_seconds,
    )
    await email_service.ingest_events(session, [event], thresholds=thresholds)


def _sent_data(message: EmailMessage) -> dict[str, Any]:
    data = {
        "message_id": message.id,
        "subject": message.subject,
        "kind": message.kind,
        "sequence_id": message.sequence_id,
        "step_key": message.step_key,
        "variant": message.variant,
        "recipient": message.recipient,
    }
    return {k: v for k, v in data.items() if v is not None}


async def _release(
    sessions: async_sessionmaker[AsyncSession],
    pending: Iterable[EmailMessage],
    claimed_at: datetime,
    report: SendReport,
) -> None:
    """Give claimed, unsent messages back to the queue, due now (only rows still under this claim)."""
    ids = [m.id for m in pending]
    if not ids:
        return
    async with session_scope(sessions) as session:
        result = await session.execute(
            update(_MESSAGES)
            .where(
                _MESSAGES.c.id.in_(ids),
                _MESSAGES.c.status == "sending",
                _MESSAGES.c.sending_since.is_(None),
                _MESSAGES.c.next_attempt_at == claimed_at,
            )
            .values(status="queued")
            .returning(_MESSAGES.c.id)
        )
        report.released += len(result.all())


async def _finish_in_flight(lanes: asyncio.Future[None]) -> None:
    """Wait for the lanes to record what is on the wire; a second cancel abandons them (rows go ``unknown``)."""
    try:
        await asyncio.shield(lanes)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("recording the outcomes of the messages in flight failed")
