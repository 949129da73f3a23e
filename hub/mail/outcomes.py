"""Recording what became of a message the relay answered: a retry, a failure (a hard bounce suppresses), an
``unknown`` (no reply to its content), or the ``email_sent`` timeline entry of a sent one."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import String, Table, case, exists, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.config import Settings
from hub.email import service as email_service
from hub.email.models import EmailMessage
from hub.email.rules import HARD_BOUNCE
from hub.events import EmailEventReceived
from hub.mail.outbox import stop_marked
from hub.mail.transport import SendOutcome
from hub.privacy.rules import ERASED
from hub.sequences.models import Sequence as SequenceRow

RetryTiming = Callable[[EmailMessage, datetime], datetime]
"""When a retry the backoff puts at the given time may go (a sequence's send window: hub.mail.send_windows)."""
NextStepsTiming = Callable[[AsyncSession | AsyncConnection, Sequence[tuple[EmailMessage, datetime]]], Awaitable[None]]
"""Puts off the next steps of the sequence emails retried at the given times (hub.mail.send_windows)."""
ERASED_DETAIL = "refused by the relay; its answer is not kept (the contact was erased)"
RETRY_JITTER = 0.1
"""A retry waits up to 10 % longer than its schedule says, so a relay's bad minute is not retried in lockstep."""
_MESSAGES = cast(Table, EmailMessage.__table__)


# A message on the wire could not be held by a pause nor cancelled by a stop; if the relay answers "try again
# later", its retry obeys them now. Cancelled when a stop marked it (hub.mail.outbox.cancel_unsent: a
# reply, a won deal, an unsubscribe, an erasure must not let it through on the retry), read from the row itself,
# which an UPDATE reads again once the stop that holds it commits. Held while its sequence is paused (a resume
# releases it): the sequence row is share-locked first (``_wait_for_pause_or_resume``), so a pause or resume
# in progress is waited for and its outcome is what this statement reads.
_STOP_MARKED = stop_marked()
_PAUSED_SEQUENCE = exists().where(SequenceRow.id == _MESSAGES.c.sequence_id, SequenceRow.status == "paused")
_RETRY_STATUS = case((_STOP_MARKED, "cancelled"), (_PAUSED_SEQUENCE, "held"), else_="queued")
_RETRY_AT_TYPE = _MESSAGES.c.next_attempt_at.type


async def _wait_for_pause_or_resume(db: AsyncSession | AsyncConnection, sequence_id: int | None) -> None:
    if sequence_id is not None:  # FOR SHARE waits for the FOR NO KEY UPDATE a pause or resume holds (PostgreSQL)
        await db.execute(select(SequenceRow.id).where(SequenceRow.id == sequence_id).with_for_update(read=True))


def retry_delay(attempts: int, schedule: Sequence[int], jitter: float) -> timedelta | None:
    """How long after attempt number ``attempts`` (1-based) to try again; None once the schedule is spent."""
    if attempts < 1 or attempts > len(schedule):
        return None
    return timedelta(minutes=schedule[attempts - 1] * (1 + jitter))


def sent_entry_values(message: EmailMessage, handed_over_at: datetime) -> dict[str, Any]:
    """The columns of the ``email_sent`` timeline entry of a message the relay accepted (``recorded_at`` aside)."""
    return {
        "contact_id": message.contact_id,
        "kind": "email_sent",
        "source": "hub:email",
        "external_id": f"message:{message.id}",
        "data": _sent_data(message),
        "occurred_at": handed_over_at,
    }


def as_stored(entry: dict[str, Any], recipient: str, subject: str | None) -> dict[str, Any]:
    """``entry`` (of ``sent_entry_values``) with the address and subject the message's row has when it is
    recorded: an erasure while the mail was on the wire scrubbed them, and the entry must not bring them back."""
    data = {k: v for k, v in entry["data"].items() if k not in ("recipient", "subject")}
    data |= {k: v for k, v in (("recipient", recipient), ("subject", subject)) if v is not None}
    return entry | {"data": data}


async def record_unsent(
    db: AsyncSession | AsyncConnection,
    settings: Settings,
    message: EmailMessage,
    outcome: SendOutcome,
    now: datetime,
    tally: Counter[str],
    *,
    retry_at: RetryTiming | None = None,
) -> datetime | None:
    """A retry (back to ``queued`` with its next time, which ``retry_at`` may move into a send window), a
    failure (with a hard bounce's suppression), or ``unknown`` (never sent again); the retry's time, if one."""
    if outcome.status == "unknown":
        await _record_unknown(db, message, outcome)
        tally["unknown"] += 1
        return None
    delay = retry_delay(message.attempts, settings.send_retry_minutes, random.random() * RETRY_JITTER)  # noqa: S311
    if outcome.status == "retry" and delay is not None:
        due = now + delay if retry_at is None else retry_at(message, now + delay)
        await _wait_for_pause_or_resume(db, message.sequence_id)
        await db.execute(
            update(_MESSAGES)
            .where(_MESSAGES.c.id == message.id, _MESSAGES.c.status.in_(("sending", "unknown")))
            .values(
                status=_RETRY_STATUS,
                next_attempt_at=case((_STOP_MARKED, null()), else_=literal(due, _RETRY_AT_TYPE)),
                smtp_code=outcome.code,
                last_error=case((_STOP_MARKED, _MESSAGES.c.last_error), else_=literal(outcome.detail, String())),
            )
        )
        tally["retried"] += 1
        return due
    # An erasure while the mail was on the wire scrubbed the row: the relay's answer may quote the address, and a
    # bounce would put it back (an event, a plain suppression, a timeline entry). Read under the row's lock, so
    # an erasure in progress is waited for.
    current = select(_MESSAGES.c.recipient).where(_MESSAGES.c.id == message.id).with_for_update()
    erased = (await db.execute(current)).scalar() == ERASED
    if outcome.hard_bounce and not erased:
        assert isinstance(db, AsyncSession)  # the writer (hub.mail.lanes) opens a session for hard bounces
        await _record_hard_bounce(db, settings, message, outcome, now)
        tally["hard_bounced"] += 1
    if erased:
        detail = ERASED_DETAIL
    elif outcome.status == "failed":
        detail = outcome.detail
    else:
        detail = f"gave up after {message.attempts} attempts: {outcome.detail}"
    await db.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id == message.id)
        .values(status="failed", failed_at=now, smtp_code=outcome.code, next_attempt_at=None, last_error=detail[:500])
    )
    tally["failed"] += 1
    return None


async def _record_unknown(db: AsyncSession | AsyncConnection, message: EmailMessage, outcome: SendOutcome) -> None:
    """The relay got the content but no reply came: perhaps stored, so never sent again (as ``expire_stuck``
    settles a worker killed mid-send). A row a provider's event already moved on (delivered) is left as it is."""
    await db.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id == message.id, _MESSAGES.c.status.in_(("sending", "unknown")))
        .values(
            status="unknown",
            next_attempt_at=None,
            smtp_code=outcome.code,
            # A stop's mark stays (hub.mail.outbox.cancel_unsent), as expire_stuck keeps it.
            last_error=case((_STOP_MARKED, _MESSAGES.c.last_error), else_=literal(outcome.detail[:500], String())),
        )
    )


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
        bounce=HARD_BOUNCE,
        reason=outcome.detail,
        detail={"smtp_code": outcome.code},
    )
    await email_service.ingest_events(
        session, [event], thresholds=email_service.thresholds_from(settings), secret=settings.resolved_secret_key
    )


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
