"""Recording what became of a message the relay answered: a retry, a failure (a hard bounce suppresses), or
the ``email_sent`` timeline entry of a sent one."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.config import Settings
from hub.email import service as email_service
from hub.email.models import EmailMessage
from hub.events import EmailEventReceived
from hub.mail.transport import SendOutcome

RETRY_JITTER = 0.1
"""A retry waits up to 10 % longer than its schedule says, so a relay's bad minute is not retried in lockstep."""
_MESSAGES = cast(Table, EmailMessage.__table__)


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


async def record_unsent(
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
        assert isinstance(db, AsyncSession)  # the writer (hub.mail.lanes) opens a session for hard bounces
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
    await email_service.ingest_events(session, [event], thresholds=email_service.thresholds_from(settings))


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
