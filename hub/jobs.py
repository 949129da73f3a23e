"""Job functions: the same code runs in the embedded runner and in arq workers.

Jobs take ids (or nothing), never payloads, and are safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hub.config import Settings
from hub.db import session_scope
from hub.inbox import service as inbox

log = logging.getLogger(__name__)

JobContext = dict[str, Any]
"""arq's ctx: ``sessions`` (async_sessionmaker) and ``settings`` are put there at start-up."""


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


@dataclass(frozen=True)
class PeriodicJob:
    """A job the runner starts on a fixed interval (arq: at ``minute`` past each hour)."""

    name: str
    func: Callable[[JobContext], Awaitable[Any]]
    every: timedelta
    minute: int


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(name="prune_spam", func=prune_spam, every=timedelta(hours=1), minute=17),
    PeriodicJob(name="prune_nonces", func=prune_nonces, every=timedelta(hours=1), minute=47),
)
