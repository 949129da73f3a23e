"""Job functions: the same code runs in the embedded runner and in arq workers.

Jobs take ids (or nothing), never payloads, and are safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hub import clock
from hub.config import Settings
from hub.contacts import repository as contacts_repo
from hub.db import session_scope
from hub.inbox import service as inbox
from hub.policy.store import RulesStore
from hub.routing import deadlines, performance, queue
from hub.scoring import service as scoring

log = logging.getLogger(__name__)

JobContext = dict[str, Any]
"""arq's ctx: ``sessions`` (async_sessionmaker), ``settings`` and ``rules`` (RulesStore) are put there at start-up."""
BATCH = 100
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
    async with session_scope(ctx["sessions"]) as session:
        assigned = await queue.retry_due(session, rules.current, clock.now(), limit=BATCH)
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


@dataclass(frozen=True)
class PeriodicJob:
    """A job the runner starts on a fixed interval (arq: at the given minutes and seconds)."""

    name: str
    func: Callable[[JobContext], Awaitable[Any]]
    every: timedelta
    minute: int | set[int] | None = None
    """arq cron minutes (None: every minute)."""
    second: int | set[int] = 0


_EVERY_10_SECONDS = set(range(0, 60, 10))

PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(name="prune_spam", func=prune_spam, every=timedelta(hours=1), minute=17),
    PeriodicJob(name="prune_nonces", func=prune_nonces, every=timedelta(hours=1), minute=47),
    PeriodicJob(name="process_deadlines", func=process_deadlines, every=timedelta(seconds=5), second=_EVERY_10_SECONDS),
    PeriodicJob(name="retry_routing_queue", func=retry_routing_queue, every=timedelta(seconds=30), second={5, 35}),
    PeriodicJob(name="recheck_warmth", func=recheck_warmth, every=timedelta(seconds=60), second=25),
    PeriodicJob(
        name="recompute_performance",
        func=recompute_performance,
        every=timedelta(minutes=5),
        minute=set(range(2, 60, 5)),
    ),
)
