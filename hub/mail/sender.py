"""The send loop: nothing sent twice, nothing lost.

A message row moves ``queued -> sending -> sent | failed | suppressed | unknown`` (or back to ``queued`` for a
retry, timed into its sequence's send window: ``hub.mail.send_windows``). ``unknown`` is a message whose content
went to the relay without a reply (a timeout, a dropped connection: ``hub.mail.transport``); it may have been
stored, so it is never sent again. ``sending`` has two phases, told apart by ``sending_since``:

1. **claimed** (``sending_since`` NULL, ``next_attempt_at`` = the claim time): ``send_due`` took the row in
   one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent workers never take the
   same row). Nothing has been sent; the claim time is the worker's claim token.
2. **handed over** (``sending_since`` set, ``attempts`` + 1): committed right before the message goes to
   SMTP, after the suppression list was checked again, as a compare-and-set on the claim token.

**Lanes.** The pool's N connections each get a lane: a coroutine that sends its messages one after the
other. Before a lane sends its next message it asks for ONE transaction that both records the outcome of
its previous message (with its ``email_sent`` timeline entry) and hands the next one over. Those requests
are group-committed: whichever lane finds the writer free takes every request waiting at that moment into
one transaction, while the other lanes' messages are still on the wire, so a transaction carries up to N
outcomes and N hand-overs. The writer lingers a few milliseconds for the lanes still sending (their sends
started together and end together): on a 2-core machine a transaction costs more CPU than SMTP, so fewer,
fuller transactions win. A lane builds its next message's bytes before asking (while the others are on
the wire), and while its request commits it opens the message's SMTP transaction (MAIL, RCPT, DATA up to
the relay's 354): the content is written only once the hand-over has committed, and when it did not go
through the lane hangs up instead (``Transport.send``'s ``go``), so nothing of that message was sent.
Suppressions are also checked when a batch is claimed, so a suppressed address is not even named to the
relay (one added while the batch runs is still caught by the hand-over). On PostgreSQL, when every outcome is ``sent``,
the transaction is ONE statement in autocommit on a connection held for the batch (``hub.mail.recording``);
otherwise (a retry, a failure, SQLite) it is a transaction holding the same writes, through the ORM session
only for a hard bounce (the email-event path and its before-commit hooks).

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
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# The ``name as name`` imports re-export what callers import from the send loop (it was one module once).
from hub import clock
from hub.config import Settings
from hub.db import session_scope
from hub.email.models import EmailMessage
from hub.mail.lanes import SendBatch
from hub.mail.links import LinkMaker
from hub.mail.outbox import stop_marked
from hub.mail.outcomes import retry_delay as retry_delay
from hub.mail.recording import mark_suppressed
from hub.mail.send_windows import SendWindows
from hub.mail.throttle import Throttle
from hub.mail.transport import Transport
from hub.mail.wire import mime_for as mime_for
from hub.mail.wire import raw_for as raw_for
from hub.sequences.breaker import check_breakers

log = logging.getLogger(__name__)

_MESSAGES = cast(Table, EmailMessage.__table__)


@dataclass
class SendReport:
    """What one ``send_due`` run did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    """Handed over, but the relay's reply to the content never came: ``unknown``, never sent again."""
    hard_bounced: int = 0
    suppressed: int = 0
    released: int = 0
    """Claimed but given back to ``queued`` unsent (shutdown, or the batch ran long)."""
    deferred: int = 0
    """Claimed sequence mail whose send window was shut: queued again for the window's next opening."""
    lost_claim: int = 0
    """Claimed rows another worker took over after the claim expired; not sent by this one."""
    paused_sequences: list[int] = field(default_factory=list)
    transactions: int = 0
    """How many transactions recorded outcomes and handed messages over (the benchmark reports it)."""


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
        # Checked again at each hand-over; here too because a lane opens a message's SMTP transaction (MAIL, RCPT)
        # while its hand-over commits: an address suppressed while it waited in the queue is not even named to
        # the relay. One look-up per batch.
        suppressed = set(await mark_suppressed(session, claimed, claimed_at, keys=links.keys)) if claimed else set()
    report.claimed, report.suppressed = len(claimed), len(suppressed)
    claimed = [message for message in claimed if message.id not in suppressed]
    windows = SendWindows(tuple(claimed), settings.default_time_zone)
    claimed = await _keep_to_windows(sessions, claimed, windows, claimed_at, report)
    if not claimed:
        return report
    batch = SendBatch(sessions, transport, throttle, settings, links, claimed_at, deque(claimed))
    batch.windows = windows  # read already when the batch has sequence mail; its retries keep to them too
    deadline = claimed_at + timedelta(seconds=settings.sending_timeout_seconds / 2)
    lanes = asyncio.ensure_future(batch.lanes(max(1, settings.smtp_pool_size), deadline))
    try:
        # Shielded: a cancel lets the messages already on the wire finish and be recorded.
        await asyncio.shield(lanes)
    except asyncio.CancelledError:
        batch.stop()
        if not lanes.done():
            await _finish_in_flight(lanes)
        await asyncio.shield(_release(sessions, batch.pending, claimed_at, report))
        raise
    except Exception:
        await _release(sessions, batch.pending, claimed_at, report)
        raise
    await _release(sessions, batch.pending, claimed_at, report)
    for name, count in batch.tally.items():
        setattr(report, name, getattr(report, name) + count)
    # Breakers trip on failures, so they are checked after a batch in which the sequence had a message not
    # sent (a sequence still short of HUB_BREAKER_MIN_SENDS is looked at again at its next failure). The check
    # counts every recent send of the sequence: after every batch, a 50,000-message campaign paid 100 scans of
    # up to 50,000 rows.
    if batch.failing_sequence_ids:
        async with session_scope(sessions) as session:
            report.paused_sequences = await check_breakers(session, batch.failing_sequence_ids, settings, clock.now())
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
            # A stop's mark stays (hub.mail.outbox.cancel_unsent): a slow worker's late "try again later" must
            # still be cancelled, not sent after the reply.
            last_error=case(
                (stop_marked(), EmailMessage.last_error),
                else_="the worker stopped while handing this message to SMTP; it may or may not have been sent",
            ),
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


async def _keep_to_windows(
    sessions: async_sessionmaker[AsyncSession],
    claimed: list[EmailMessage],
    windows: SendWindows,
    claimed_at: datetime,
    report: SendReport,
) -> list[EmailMessage]:
    """The claimed messages to send now. A sequence's email whose send window is shut (it waited in the queue
    past the window's close: workers down, a backlog) goes back to the queue for the window's next opening in
    its contact's zones, as the step runner would have timed it; only rows still under this claim. Its
    enrollment's next step then counts its delay from that opening, not from when the step was queued."""
    if not windows.unread_for(claimed):
        return claimed  # no sequence mail in the batch: nothing to read
    async with session_scope(sessions) as session:
        await windows.read(session)
    later: dict[datetime, list[int]] = {}
    moved: list[tuple[EmailMessage, datetime]] = []
    for message in claimed:
        opens = windows.retry_at(message, claimed_at)
        if opens > claimed_at:
            later.setdefault(opens, []).append(message.id)
            moved.append((message, opens))
    if not later:
        return claimed
    async with session_scope(sessions) as session:
        # The enrollments before the messages, in the order a stop locks them (hub.sequences.enrollment.stop), so
        # the two never wait for each other.
        await windows.count_next_steps_from(session, moved)
        for opens, ids in later.items():
            report.deferred += await _requeue_claimed(session, ids, claimed_at, next_attempt_at=opens)
    waiting = {message_id for ids in later.values() for message_id in ids}
    return [message for message in claimed if message.id not in waiting]


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
        report.released += await _requeue_claimed(session, ids, claimed_at)


async def _requeue_claimed(session: AsyncSession, ids: list[int], claimed_at: datetime, **values: object) -> int:
    """Put these rows back to ``queued`` (with ``values``) where they are still merely claimed by this batch (the
    claim token: ``sending`` with no hand-over, ``next_attempt_at`` the claim time); how many were."""
    result = await session.execute(
        update(_MESSAGES)
        .where(
            _MESSAGES.c.id.in_(ids),
            _MESSAGES.c.status == "sending",
            _MESSAGES.c.sending_since.is_(None),
            _MESSAGES.c.next_attempt_at == claimed_at,
        )
        .values(status="queued", **values)
        .returning(_MESSAGES.c.id)
    )
    return len(result.all())


async def _finish_in_flight(lanes: asyncio.Future[None]) -> None:
    """Wait for the lanes to record what is on the wire; a second cancel abandons them (rows go ``unknown``)."""
    try:
        await asyncio.shield(lanes)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("recording the outcomes of the messages in flight failed")
