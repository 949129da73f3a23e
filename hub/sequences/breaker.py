"""The circuit breaker: a sequence whose sends fail too often in a short window is paused (resumed by the API).

Its pauses are audited as ``sequence.paused`` by the actor ``rule:circuit_breaker``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.db import retry_transient
from hub.email.models import EmailMessage
from hub.mail.outbox import hold_sequence_mail
from hub.sequences import turnstile
from hub.sequences.models import Sequence
from hub.sequences.service import record_status_change

log = logging.getLogger(__name__)
BREAKER_ACTOR = "rule:circuit_breaker"


async def check_breakers(
    session: AsyncSession, sequence_ids: Iterable[int], settings: Settings, now: datetime
) -> list[int]:
    """Pause every active sequence among ``sequence_ids`` whose recent failure rate trips the breaker;
    the ids paused. The caller commits."""
    wanted = sorted(set(sequence_ids))
    if not wanted:
        return []
    minutes = settings.breaker_window_minutes
    since = now - timedelta(minutes=minutes)
    sent = func.sum(case((EmailMessage.sent_at >= since, 1), else_=0))
    failed = func.sum(case(((EmailMessage.status == "failed") & (EmailMessage.failed_at >= since), 1), else_=0))
    rows = await session.execute(
        select(EmailMessage.sequence_id, sent, failed)
        .where(
            EmailMessage.sequence_id.in_(wanted),
            (EmailMessage.sent_at >= since) | (EmailMessage.failed_at >= since),
        )
        .group_by(EmailMessage.sequence_id)
    )
    tripped: dict[int, str] = {}
    for sequence_id, sent_count, failed_count in rows:
        sent_n, failed_n = int(sent_count or 0), int(failed_count or 0)
        total = sent_n + failed_n
        if (
            sequence_id is not None
            and total >= settings.breaker_min_sends
            and failed_n / total >= settings.breaker_error_rate
        ):
            tripped[sequence_id] = f"circuit breaker: {failed_n} of {total} failed in {minutes} min"
    if not tripped:
        return []
    paused = []
    await turnstile.enter_alone(session, tripped)  # as a pause by hand does: batches arriving meanwhile wait
    sequences = await session.scalars(
        select(Sequence).where(Sequence.id.in_(tripped), Sequence.status == "active").with_for_update(key_share=True)
    )
    for sequence in sequences:
        sequence.status, sequence.paused_reason, sequence.paused_at = "paused", tripped[sequence.id][:300], now
        sequence.updated_at = now
        # What is still queued for it waits too: a failing relay or list should not get another batch. Holding
        # claimed rows can deadlock with a send loop's hand-over of them, as a pause by hand can: run it again.
        await retry_transient(session, partial(hold_sequence_mail, session, sequence.id))
        record_status_change(session, BREAKER_ACTOR, "sequence.paused", sequence)
        paused.append(sequence.id)
        log.warning("paused sequence %d: %s", sequence.id, tripped[sequence.id])
    await session.flush()
    return paused
