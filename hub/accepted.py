"""Deferred mode's second half: the worker applies accepted events with the inline path's own code.

An accepted event is applied exactly as the inline webhook would have applied it (form ingest, call
callbacks, email events: the same functions, the same dedupe keys), so a provider's redelivery
that arrives after the accepted row is gone still changes nothing. A batch is applied in one
transaction, run again whole when PostgreSQL picks it as a deadlock victim (so its events need no
savepoint each); if it fails otherwise, each event is retried in its own, and an event that keeps
failing is kept with its error and retried later with backoff, never dropped and never blocking the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import groupby
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub import clock
from hub.calls import service as calls
from hub.config import Settings
from hub.db import WHOLE_TRANSACTION_RETRIED, is_transient, lock_keys
from hub.email import service as email
from hub.email import suppressions
from hub.inbox import codec, repository
from hub.inbox import service as inbox
from hub.inbox.models import AcceptedEvent
from hub.ingest import (
    call_status_inbox_row,
    form_inbox_row,
    form_lock_keys,
    ingest_call_status,
    ingest_form_submission,
    ingest_recording,
    recording_inbox_row,
)
from hub.privacy import consent

log = logging.getLogger(__name__)
RETRY_MINUTES = (1, 5, 15, 60)
"""A failing event waits this long before its next attempt, then an hour each time."""

Applier = Callable[[AsyncSession, list[Any], Settings], Awaitable[None]]


async def _apply_forms(session: AsyncSession, events: list[Any], settings: Settings) -> None:
    for event in events:
        await ingest_form_submission(session, event, default_region=settings.default_region)


async def _apply_call_statuses(session: AsyncSession, events: list[Any], settings: Settings) -> None:
    for event in events:
        await ingest_call_status(session, event, default_region=settings.default_region)


async def _apply_recordings(session: AsyncSession, events: list[Any], settings: Settings) -> None:  # noqa: ARG001
    for event in events:
        await ingest_recording(session, event)


async def _apply_email_events(session: AsyncSession, events: list[Any], settings: Settings) -> None:
    await email.ingest_events(
        session, events, thresholds=email.thresholds_from(settings), secret=settings.resolved_secret_key
    )


APPLIERS: dict[str, Applier] = {
    "form": _apply_forms,
    "call_status": _apply_call_statuses,
    "recording": _apply_recordings,
    "email_events": _apply_email_events,
}
"""Channel (``accepted_events.channel``) -> what applies its events."""


@dataclass
class ApplyReport:
    """What one apply run did."""

    applied: int = 0
    failed: list[int] = field(default_factory=list)

    @property
    def claimed(self) -> int:
        """Events taken from the queue, applied or not."""
        return self.applied + len(self.failed)


BATCH_ATTEMPTS = 3
"""A batch that PostgreSQL picks as a deadlock victim is run again this often before going one by one."""


async def apply_accepted(sessions: async_sessionmaker[AsyncSession], settings: Settings, *, limit: int) -> ApplyReport:
    """Apply up to ``limit`` accepted events: in one transaction, else one by one."""
    report = ApplyReport()
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        async with sessions() as session:
            # The batch is retried whole on a deadlock (below), so its events need no savepoint each.
            session.info[WHOLE_TRANSACTION_RETRIED] = True
            rows = await repository.claim_accepted(session, clock.now(), limit)
            if not rows:
                return report
            ids = [row.id for row in rows]
            try:
                await _apply(session, rows, settings)
                await repository.delete_accepted(session, ids)
                await session.commit()
                report.applied = len(ids)
                return report
            except DBAPIError as exc:
                await session.rollback()
                if is_transient(exc) and attempt < BATCH_ATTEMPTS:
                    # Another worker's batch holds some of the same contacts; the claim is released with
                    # the rollback, so the next attempt may take a different set of events.
                    await asyncio.sleep(random.uniform(0, 0.05 * attempt))  # noqa: S311 - jitter, not security
                    continue
                failure = f"{type(exc.orig).__name__}, SQLSTATE {getattr(exc.orig, 'sqlstate', None)}"
                break
            except Exception as exc:  # one bad event must not hold back the batch: fall back to one per transaction
                await session.rollback()
                failure = type(exc).__name__  # not its text: it may quote an event's personal data
                break
    log.warning("applying a batch of %d accepted events failed (%s); applying them one by one", len(ids), failure)
    for event_id in ids:
        if await _apply_one(sessions, event_id, settings):
            report.applied += 1
        else:
            report.failed.append(event_id)
    return report


async def _apply(session: AsyncSession, rows: list[AcceptedEvent], settings: Settings) -> None:
    inbox.defer_marks(session)  # every event's inbox row marked in one execution at the end
    runs = list(_in_apply_order(rows))
    await _take_up_front(session, runs, settings)
    for channel, events in runs:
        await APPLIERS[channel](session, events, settings)
    inbox.all_prerecorded_taken(session)
    await inbox.write_deferred_marks(session)


UpFront = Callable[[Any, Settings], tuple[inbox.InboxRow, list[str]]]
UP_FRONT: dict[str, UpFront] = {
    "form": lambda event, settings: (form_inbox_row(event), form_lock_keys(event, settings.default_region)),
    "call_status": lambda event, _: (call_status_inbox_row(event), calls.progress_lock_keys(event)),
    "recording": lambda event, _: (recording_inbox_row(event), calls.recording_lock_keys(event)),
}
"""Channel -> the inbox row an event of it records and the keys it locks first, known before it is applied."""


async def _take_up_front(session: AsyncSession, runs: list[tuple[str, list[Any]]], settings: Settings) -> None:
    """Lock every key the batch's forms and callbacks will lock, and store their inbox rows, in two statements
    instead of two per event (each event's own ``lock_keys`` and ``record`` then find them done: see
    ``hub.db.lock_keys`` and ``hub.inbox.service.prerecord``). Both go in key order, as each event's would.
    Only in a batch whose whole transaction is retried: an event applied on its own (``_apply_one``) runs its form in
    a savepoint, whose rollback (a deadlock) would leave the stored row behind, and the retry would then take the
    form for a duplicate of itself and drop it."""
    if not session.info.get(WHOLE_TRANSACTION_RETRIED):
        return
    prepared = [UP_FRONT[channel](e, settings) for channel, events in runs if channel in UP_FRONT for e in events]
    await lock_keys(session, [key for _, keys in prepared for key in keys])
    await inbox.prerecord(session, [row for row, _ in prepared])


EMAIL_EVENTS = "email_events"
COMMUTE_WITH_EMAIL_EVENTS = frozenset({"call_status", "recording"})
"""Channels whose events neither read nor write what an email event does (contacts found by email address,
suppressions, consent, messages), so an email event may be applied after them."""


def _in_apply_order(rows: list[AcceptedEvent]) -> Iterator[tuple[str, list[Any]]]:
    """The batch's events as runs of one channel each, in arrival order, except that email events wait.

    Email events are applied together, in one ``ingest_events`` call (a handful of look-ups and one insert for
    all of them): in arrival order, the soak's mix of single Postmark events and SendGrid batches between form
    posts and call callbacks made ~25 such calls a second (bench/apply_cost.py). An email event applied later
    finds what a form created or merged meanwhile, which is at least as right. Consent and suppressions follow
    the events' own times, not the order they are applied in, except for two changes in the same second: so the
    waiting email events still go first when a form names one of their addresses or carries consent (an
    unsubscribe, then a ticked box), and before any channel not known to commute with them.
    """
    waiting: list[Any] = []
    recipients: set[str] = set()
    for channel, group in groupby(rows, key=lambda row: row.channel):
        events = [codec.decode(row.payload) for row in group]
        if channel == EMAIL_EVENTS:
            waiting.extend(events)
            recipients.update(_addresses(e.recipient for e in events))
            continue
        if waiting and channel not in COMMUTE_WITH_EMAIL_EVENTS and not _commutes(channel, events, recipients):
            yield EMAIL_EVENTS, waiting
            waiting, recipients = [], set()
        yield channel, events
    if waiting:
        yield EMAIL_EVENTS, waiting


def _commutes(channel: str, forms: list[Any], recipients: set[str]) -> bool:
    """Whether waiting email events to ``recipients`` may be applied after these events: forms that name none of
    those addresses and carry no consent (one found by its phone may be the same person, and consent given in the
    same second as an unsubscribe counts in the order the two are applied)."""
    if channel != "form" or any(consent.carries_consent(form) for form in forms):
        return False
    return _addresses(field.value for form in forms for field in form.emails).isdisjoint(recipients)


def _addresses(values: Iterable[str]) -> set[str]:
    return {address for value in values if (address := suppressions.normalized_address(value))}


async def _apply_one(sessions: async_sessionmaker[AsyncSession], event_id: int, settings: Settings) -> bool:
    async with sessions() as session:
        rows = await repository.claim_accepted_by_id(session, event_id)
        if not rows:
            return True  # another worker took it meanwhile
        attempts = rows[0].attempts + 1  # read now: a rollback expires the row
        try:
            await _apply(session, rows, settings)
            await repository.delete_accepted(session, [event_id])
            await session.commit()
            return True
        except Exception as exc:
            await session.rollback()
            log.warning("accepted event %d failed to apply (%s); will retry", event_id, type(exc).__name__)
            wait = timedelta(minutes=RETRY_MINUTES[min(attempts, len(RETRY_MINUTES)) - 1])
            await repository.postpone_accepted(
                session,
                event_id,
                attempts=attempts,
                error=f"{type(exc).__name__}: {exc}"[:500],
                available_at=clock.now() + wait,
            )
            await session.commit()
            return False
