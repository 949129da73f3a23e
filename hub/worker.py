"""The worker's composition root: arq settings for ``hub worker`` and the embedded runner.

Embedded mode (no HUB_REDIS_URL) runs the periodic jobs as an asyncio task inside
``hub serve``; scale-out mode runs them in any number of ``hub worker`` processes,
where arq's ``unique`` cron enqueues one job per tick. A tick's job is a batch (it claims
due rows from the database and works through them), never one Redis job per email: arq
polls Redis, and per-email jobs would make sending as slow as its poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

import httpx
from arq import cron
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine
from arq.worker import Worker, func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.automation import settle_hook
from hub.composition import build_reactions, outbound_http
from hub.config import Settings, templates_dir
from hub.db import create_engine, create_sessionmaker
from hub.jobs import PERIODIC_JOBS, JobContext, PeriodicJob
from hub.mail.links import LinkMaker
from hub.mail.throttle import Throttle
from hub.mail.transport import build_transport
from hub.policy.store import RulesStore
from hub.sealing import SecretBox

log = logging.getLogger(__name__)
JOB_TIMEOUT_SECONDS = 300
MAX_TRIES = 6
"""arq's tries of one job: enough for the RETRY_SECONDS schedule of hub.jobs."""
REDIS_RETRIES = 30
REDIS_RETRY_CAP_SECONDS = 2.0
"""A Redis command is retried this often, at most this far apart: about a minute of Redis being away."""


def job_context(
    settings: Settings,
    *,
    sessions: Any,
    rules: RulesStore,
    http: httpx.AsyncClient,
    secret_key: str,
    fallbacks: tuple[str, ...],
    embedded: bool,
) -> JobContext:
    """What every job finds in its ctx; the SMTP pool and throttles live as long as the process."""
    return {
        "settings": settings,
        "sessions": sessions,
        "rules": rules,
        "http": http,
        "box": SecretBox(secret_key, fallbacks),
        "links": LinkMaker(settings.public_url, secret_key, fallbacks),
        "transport": build_transport(settings),
        "throttle": Throttle(settings.send_rate_per_second, settings.send_domain_rates),
        "templates_dir": templates_dir(),
        "embedded": embedded,
        "send_lock": asyncio.Lock(),
        "apply_lock": asyncio.Lock(),
    }


async def close_context(ctx: JobContext) -> None:
    """Close what job_context opened (the SMTP connections)."""
    transport = ctx.get("transport")
    if transport is not None:
        await transport.close()


class EmbeddedWorker:
    """Runs periodic jobs inside the API process; one failing job never stops the others."""

    def __init__(self, ctx: JobContext, jobs: tuple[PeriodicJob, ...] = PERIODIC_JOBS, tick_seconds: float = 1.0):
        self._ctx = ctx
        self._jobs = jobs
        self._tick = tick_seconds
        self._last_run: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin ticking in the background."""
        self._task = asyncio.create_task(self._loop(), name="hub-embedded-worker")

    async def stop(self) -> None:
        """Cancel the loop and wait until the job that was running (if any) has released what it claimed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_due(self) -> list[str]:
        """Run every job whose interval has passed; returns the names that ran."""
        ran = []
        now = time.monotonic()
        for job in self._jobs:
            last = self._last_run.get(job.name)
            if last is not None and now - last < job.every.total_seconds():
                continue
            self._last_run[job.name] = now
            try:
                await job.func(self._ctx)
            except Exception:
                log.exception("embedded job %s failed", job.name)
            ran.append(job.name)
        return ran

    async def _loop(self) -> None:
        while True:
            await self.run_due()
            await asyncio.sleep(self._tick)


def redis_settings(url: str) -> RedisSettings:
    """arq connection settings from HUB_REDIS_URL; a Redis restart is waited out, not fatal."""
    settings = RedisSettings.from_dsn(url)
    # arq's poll loop lets a Redis ConnectionError end the worker, and redis-py retries nothing unless
    # told to: without this, every worker exits while Redis restarts (tests/faults: Redis restarted mid-send).
    # OSError too: that is what a refused (re)connect raises inside redis-py's retry.
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    settings.retry = Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP_SECONDS, base=0.1), retries=REDIS_RETRIES)
    return settings


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq Worker with the hub's jobs; ``hub worker`` runs it, tests run it in burst mode."""
    if not settings.redis_url:
        raise ValueError("HUB_REDIS_URL is not set; without it `hub serve` runs the embedded worker")

    async def on_startup(ctx: JobContext) -> None:
        engine = create_engine(
            settings.database_url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout_seconds
        )
        rules = RulesStore(settings.rules_file, check_seconds=settings.rules_check_seconds)
        sessions = create_sessionmaker(
            engine, before_commit=[settle_hook(lambda: rules.current, build_reactions(settings))]
        )
        http = outbound_http(15.0, allow_private=settings.outbound_private_networks)
        ctx.update(
            engine=engine,
            **job_context(
                settings,
                sessions=sessions,
                rules=rules,
                http=http,
                secret_key=settings.resolved_secret_key(),
                fallbacks=settings.resolved_secret_key_fallbacks(),
                embedded=False,
            ),
        )

    async def on_shutdown(ctx: JobContext) -> None:
        await close_context(ctx)
        if "http" in ctx:
            await ctx["http"].aclose()
        if "engine" in ctx:
            await ctx["engine"].dispose()

    options: dict[str, Any] = {
        "functions": [func(cast(WorkerCoroutine, job.func), max_tries=MAX_TRIES) for job in PERIODIC_JOBS],
        "cron_jobs": [
            cron(
                cast(WorkerCoroutine, job.func),
                minute=job.minute,
                second=job.second,
                unique=True,
                name=f"cron:{job.name}",
                max_tries=MAX_TRIES,
                run_at_startup=job.run_at_startup,
            )
            for job in PERIODIC_JOBS
        ],
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "handle_signals": True,
        "max_jobs": 10,
        "job_timeout": JOB_TIMEOUT_SECONDS,
    }
    options.update(overrides)
    return Worker(**options)
