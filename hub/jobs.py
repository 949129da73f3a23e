"""Job functions: the same code runs in the embedded runner and in arq workers.

Jobs take ids (or nothing), never payloads, and are safe to run twice: each claims its due rows
from the database (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a job run twice, or by two
workers at once, finds nothing left to do the second time. Redis only carries the ticks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from arq.worker import Retry
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from hub import clock
from hub.accepted import apply_accepted
from hub.config import Settings
from hub.contacts import repository as contacts_repo
from hub.db import is_transient, session_scope
from hub.imports.jobs import run_imports
from hub.inbox import service as inbox
from hub.mail import sender
from hub.notify.delivery import push_notifications
from hub.outbound.jobs import deliver_webhooks
from hub.policy.store import RulesStore
from hub.privacy.recordings import delete_erased_recordings
from hub.routing import deadlines, performance, queue
from hub.scoring import service as scoring
from hub.sequences import engine as sequence_engine
from hub.sequences.templates import LibraryCache
from hub.tasks.due import process_due_tasks

log = logging.getLogger(__name__)

JobContext = dict[str, Any]
"""arq's ctx (or the embedded runner's): ``sessions``, ``settings``, ``rules`` (RulesStore), ``links``
(LinkMaker), ``transport`` (SMTP pool or capture), ``throttle``, ``http`` (httpx), ``box`` (SecretBox) and
``templates_dir``, put there at start-up by hub.worker.open_context."""
RETRY_SECONDS = (2, 10, 30, 120, 300)
"""arq retries a job that hit a transient failure (database or network down) after these delays."""
BATCH = 100
RETRY_CHUNK = 10
"""Queued leads retried per transaction. A routing try takes ~10 ms with 100k contacts, and on SQLite a
transaction holds the one write lock: 100 tries in one transaction kept every dashboard page waiting ~1 s
every 30 s (bench/pages.py); in chunks, a page waits for one chunk at most."""
MAX_BATCHES_PER_RUN = 50
"""A run stops after this many batches so one backlog cannot starve the other jobs; the next tick continues."""


async def prune_spam(ctx: JobContext) -> int:
    """Forget bot submissions older than HUB_SPAM_RETENTION_DAYS."""
    settings: Settings = ctx["settings"]
    async with session_scope(ctx["sessions"]) as session:
        removed = await inbox.prune_spam(session, retention_days=settings.spam_retention_days)
    if removed:
        log.info("pruned %d spam submissions", removed)
    return removed


async def prune_nonces(ctx: JobContext) -> int:
    """Forget webhook nonces (Mailgun tokens) whose signatures are too old to be accepted anyway."""
    async with session_scope(ctx["sessions"]) as session:
        removed = await inbox.prune_nonces(session)
    if removed:
        log.info("pruned %d expired webhook nonces", removed)
    return removed


async def process_deadlines(ctx: JobContext) -> int:
    """Act on due deadlines (missed first touches, stuck leads), one per transaction."""
    rules: RulesStore = ctx["rules"]
    total = 0
    # One per transaction: a hand-over locks a pool and two reps until commit, and a batch holding
    # them while it waits for another worker's pool is a deadlock (two rules sharing reps).
    for _ in range(MAX_BATCHES_PER_RUN * BATCH):
        async with session_scope(ctx["sessions"]) as session:
            done = await deadlines.process_due(session, rules.current, clock.now(), limit=1)
        total += done
        if not done:
            break
    if total:
        log.info("processed %d due deadlines", total)
    return total


async def retry_routing_queue(ctx: JobContext) -> int:
    """Try again to assign queued leads (a rep may have freed up or come on shift)."""
    rules: RulesStore = ctx["rules"]
    assigned = 0
    for _ in range(BATCH // RETRY_CHUNK):
        async with session_scope(ctx["sessions"]) as session:
            tried, found = await queue.retry_due(session, rules.current, clock.now(), limit=RETRY_CHUNK)
        assigned += found
        if tried < RETRY_CHUNK:
            break
    if assigned:
        log.info("assigned %d queued leads", assigned)
    return assigned


async def recheck_warmth(ctx: JobContext) -> int:
    """Rescore contacts whose bucket decay alone would change now."""
    rules: RulesStore = ctx["rules"]
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with session_scope(ctx["sessions"]) as session:
            now = clock.now()
            due = await contacts_repo.claim_warmth_rechecks(session, now, BATCH)
            for contact in due:
                await scoring.rescore(session, contact, rules.current.warmth, now, cause="decay")
        total += len(due)
        if len(due) < BATCH:
            break
    return total


async def recompute_performance(ctx: JobContext) -> int:
    """Measure reps' conversion and speed to first touch; the weights of performance_weighted routing."""
    rules: RulesStore = ctx["rules"]
    async with session_scope(ctx["sessions"]) as session:
        if not await performance.is_due(session, rules.current, clock.now()):
            return 0  # the job ticks every 5 minutes; the rules file says how often to measure
        rows = await performance.recompute(session, rules.current, clock.now())
    return len(rows)


SEND_BUDGET_SECONDS = 20.0
"""A send run stops claiming after this long (the next tick goes on), so shutdown and the other jobs are not starved."""
EMBEDDED_SEND_BUDGET_SECONDS = 3.0
"""Inside ``hub serve`` the jobs share one loop: a shorter budget keeps deadlines and reminders on time."""


async def send_email(ctx: JobContext) -> int:
    """Send due email in batches (claimed with SKIP LOCKED, each outcome recorded at once); returns how many went."""
    settings: Settings = ctx["settings"]
    lock: asyncio.Lock = ctx["send_lock"]
    if lock.locked():
        # arq starts a tick's job while the last one may still be sending: one send loop per process is
        # enough (the SMTP pool gives it its parallelism), and it bounds what a kill can leave in flight.
        return 0
    async with lock:
        return await _send_for(ctx, settings)


async def _send_for(ctx: JobContext, settings: Settings) -> int:
    budget = EMBEDDED_SEND_BUDGET_SECONDS if ctx.get("embedded") else SEND_BUDGET_SECONDS
    # Real elapsed time, not the hub's clock (which tests freeze): a budget limits how long this run holds on.
    deadline = time.monotonic() + budget
    sent = 0
    while time.monotonic() < deadline:
        report = await sender.send_due(
            ctx["sessions"], ctx["transport"], ctx["throttle"], settings, ctx["links"], limit=settings.send_batch_size
        )
        sent += report.sent
        if report.paused_sequences:
            log.warning("circuit breaker paused sequences %s", report.paused_sequences)
        if report.claimed < settings.send_batch_size:
            break
    return sent


async def expire_stuck_sends(ctx: JobContext) -> int:
    """Messages a dead worker left ``sending``: unclaimed ones go back to the queue, the one it was handing
    to SMTP becomes ``unknown`` (reported, never re-sent)."""
    settings: Settings = ctx["settings"]
    async with session_scope(ctx["sessions"]) as session:
        unknown = await sender.expire_stuck(session, clock.now(), settings.sending_timeout_seconds)
    if unknown:
        log.warning(
            "%d messages were being handed to SMTP when their worker died; marked unknown: %s", len(unknown), unknown
        )
    return len(unknown)


async def run_sequence_steps(ctx: JobContext) -> int:
    """Queue the due steps of sequences (windows, conditions, caps checked), a batch per transaction."""
    rules: RulesStore = ctx["rules"]
    settings: Settings = ctx["settings"]
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with session_scope(ctx["sessions"]) as session:
            library = await _template_library(ctx).load(session)
            report = await sequence_engine.run_due_steps(
                session,
                settings=settings,
                links=ctx["links"],
                library=library,
                policy=rules.current,
                now=clock.now(),
                limit=BATCH,
            )
        total += report.claimed
        if report.claimed < BATCH:
            break
    return total


def _template_library(ctx: JobContext) -> LibraryCache:
    """The process's library cache (made on first use, so a ctx built by hand in a test works too)."""
    cache = ctx.get("template_library")
    if cache is None:
        cache = ctx["template_library"] = LibraryCache(ctx["templates_dir"])
    return cache


async def process_tasks(ctx: JobContext) -> int:
    """Task reminders, overdue marks and escalation rungs that are due, a batch per transaction."""
    rules: RulesStore = ctx["rules"]
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with session_scope(ctx["sessions"]) as session:
            done = await process_due_tasks(
                session,
                settings=ctx["settings"],
                links=ctx["links"],
                policy=rules.current,
                now=clock.now(),
                limit=BATCH,
            )
        total += done
        if done < BATCH:
            break
    return total


APPLY_BUDGET_SECONDS = 10.0
"""An apply run stops taking batches after this long (the next tick goes on), so other jobs get their turn."""
EMBEDDED_APPLY_BUDGET_SECONDS = 1.0


async def apply_accepted_events(ctx: JobContext) -> int:
    """Deferred mode: apply the events webhooks accepted, a batch per transaction; returns how many."""
    lock: asyncio.Lock = ctx["apply_lock"]
    if lock.locked():
        # arq starts each second's tick while the last run may still be applying: two runs in one process
        # would only contend for the same contacts (deadlocks, measured in bench/ingest_events.py).
        return 0
    async with lock:
        return await _apply_for(ctx, ctx["settings"])


async def _apply_for(ctx: JobContext, settings: Settings) -> int:
    budget = EMBEDDED_APPLY_BUDGET_SECONDS if ctx.get("embedded") else APPLY_BUDGET_SECONDS
    deadline = time.monotonic() + budget
    applied = 0
    while time.monotonic() < deadline:
        report = await apply_accepted(ctx["sessions"], settings, limit=settings.apply_batch_size)
        applied += report.applied
        if report.claimed < settings.apply_batch_size:
            break
    return applied


def _worth_retrying(exc: DBAPIError) -> bool:
    """An outage, or a deadlock victim (a send loop's hand-over against a pause, say) rolled back whole."""
    return isinstance(exc, OperationalError | InterfaceError) or is_transient(exc)


def retry_transient_failures(func: Callable[[JobContext], Awaitable[int]]) -> Callable[[JobContext], Awaitable[int]]:
    """In arq, a database or network outage (or a deadlock that picked the job's transaction) becomes ``Retry``
    with an explicit backoff (arq would otherwise mark the job failed and never run it again); the embedded
    runner just logs it and the next tick retries."""

    async def job(ctx: JobContext) -> int:
        try:
            return await func(ctx)
        except (DBAPIError, ConnectionError, OSError) as exc:
            if isinstance(exc, DBAPIError) and not _worth_retrying(exc):
                raise  # a bug (a constraint, bad SQL): it would fail the same way every time
            try_number = int(ctx.get("job_try") or 0)
            if not try_number:
                raise
            delay = RETRY_SECONDS[min(try_number, len(RETRY_SECONDS)) - 1]
            log.warning(
                "job %s failed transiently (%s); try %d, next in %d s",
                func.__name__,
                type(exc).__name__,
                try_number,
                delay,
            )
            raise Retry(defer=delay) from exc

    job.__name__ = func.__name__
    job.__qualname__ = func.__qualname__
    job.__doc__ = func.__doc__
    return job


@dataclass(frozen=True)
class PeriodicJob:
    """A job the runner starts on a fixed interval (arq: at the given minutes and seconds)."""

    name: str
    func: Callable[[JobContext], Awaitable[Any]]
    every: timedelta
    minute: int | set[int] | None = None
    """arq cron minutes (None: every minute)."""
    second: int | set[int] = 0
    run_at_startup: bool = False


_EVERY_SECOND = set(range(60))
_EVERY_5_SECONDS = set(range(0, 60, 5))

PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        name="apply_accepted_events",
        func=retry_transient_failures(apply_accepted_events),
        every=timedelta(seconds=1),
        second=_EVERY_SECOND,
    ),
    PeriodicJob(
        name="send_email", func=retry_transient_failures(send_email), every=timedelta(seconds=1), second=_EVERY_SECOND
    ),
    PeriodicJob(
        name="run_sequence_steps",
        func=retry_transient_failures(run_sequence_steps),
        every=timedelta(seconds=5),
        second=_EVERY_5_SECONDS,
    ),
    PeriodicJob(
        name="process_tasks",
        func=retry_transient_failures(process_tasks),
        every=timedelta(seconds=10),
        second={3, 13, 23, 33, 43, 53},
    ),
    PeriodicJob(
        name="push_notifications",
        func=retry_transient_failures(push_notifications),
        every=timedelta(seconds=5),
        second={1, 6, 11, 16, 21, 26, 31, 36, 41, 46, 51, 56},
    ),
    PeriodicJob(
        name="deliver_webhooks",
        func=retry_transient_failures(deliver_webhooks),
        every=timedelta(seconds=5),
        second={2, 7, 12, 17, 22, 27, 32, 37, 42, 47, 52, 57},
    ),
    PeriodicJob(
        name="expire_stuck_sends",
        func=retry_transient_failures(expire_stuck_sends),
        every=timedelta(seconds=10),
        second={7, 17, 27, 37, 47, 57},
        run_at_startup=True,
    ),
    PeriodicJob(
        name="run_imports", func=retry_transient_failures(run_imports), every=timedelta(seconds=1), second=_EVERY_SECOND
    ),
    PeriodicJob(
        name="delete_erased_recordings",
        func=retry_transient_failures(delete_erased_recordings),
        every=timedelta(minutes=1),
        second=40,
    ),
    PeriodicJob(name="prune_spam", func=prune_spam, every=timedelta(hours=1), minute=17),
    PeriodicJob(name="prune_nonces", func=prune_nonces, every=timedelta(hours=1), minute=47),
    PeriodicJob(
        name="process_deadlines", func=process_deadlines, every=timedelta(seconds=5), second=set(range(4, 60, 5))
    ),
    PeriodicJob(name="retry_routing_queue", func=retry_routing_queue, every=timedelta(seconds=30), second={5, 35}),
    PeriodicJob(name="recheck_warmth", func=recheck_warmth, every=timedelta(seconds=60), second=25),
    PeriodicJob(
        name="recompute_performance",
        func=recompute_performance,
        every=timedelta(minutes=5),
        minute=set(range(2, 60, 5)),
    ),
)
