"""The same job code in the embedded runner and in an arq worker on real Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from arq import create_pool
from sqlalchemy import func, select

from hub import clock
from hub.config import Settings
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.inbox.models import InboundEvent
from hub.jobs import PERIODIC_JOBS, prune_spam
from hub.policy.store import RulesStore
from hub.worker import EmbeddedWorker, build_worker, job_context, redis_settings
from tests.conftest import make_settings


async def seed_spam(url: str) -> None:
    engine = create_engine(url)
    now = clock.now()
    async with session_scope(create_sessionmaker(engine)) as session:
        for n, age_days in enumerate((1, 29, 31, 90)):
            session.add(
                InboundEvent(
                    source="form:website",
                    external_id=f"spam-{n}",
                    kind="form_submission",
                    status="spam",
                    spam_reason="honeypot",
                    payload={},
                    received_at=now - timedelta(days=age_days),
                )
            )
        session.add(
            InboundEvent(
                source="form:website",
                external_id="lead-old",
                kind="form_submission",
                status="processed",
                payload={},
                received_at=now - timedelta(days=400),
            )
        )
    await engine.dispose()


def embedded_context(settings: Settings, sessions: Any) -> dict[str, Any]:
    """Everything the jobs need, as ``hub serve`` builds it (mail goes to the capture outbox)."""
    return job_context(
        settings,
        sessions=sessions,
        rules=RulesStore(settings.rules_file),
        http=httpx.AsyncClient(),
        secret_key=settings.resolved_secret_key(),
        fallbacks=settings.resolved_secret_key_fallbacks(),
        embedded=True,
    )


async def remaining(url: str) -> list[str]:
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        ids = (await session.scalars(select(InboundEvent.external_id).order_by(InboundEvent.external_id))).all()
    await engine.dispose()
    return list(ids)


async def test_embedded_worker_prunes_old_spam_once_per_interval(database_url: str) -> None:
    await seed_spam(database_url)
    settings = make_settings(database_url)
    engine = create_engine(database_url)
    ctx = embedded_context(settings, create_sessionmaker(engine))
    worker = EmbeddedWorker(ctx)
    assert await worker.run_due() == [job.name for job in PERIODIC_JOBS]
    assert await remaining(database_url) == ["lead-old", "spam-0", "spam-1"]
    assert "prune_spam" not in await worker.run_due()  # not due again for an hour
    await engine.dispose()


async def test_embedded_worker_runs_in_background_and_stops(sqlite_url: str) -> None:
    await seed_spam(sqlite_url)
    engine = create_engine(sqlite_url)
    settings = make_settings(sqlite_url)
    worker = EmbeddedWorker(embedded_context(settings, create_sessionmaker(engine)), tick_seconds=0.01)
    worker.start()
    try:
        deadline = clock.now() + timedelta(seconds=10)
        while len(await remaining(sqlite_url)) != 3:
            assert clock.now() < deadline, "embedded worker did not prune in time"
            await __import__("asyncio").sleep(0.02)
    finally:
        await worker.stop()
        await engine.dispose()


async def test_arq_worker_runs_jobs_from_redis(database_url: str, redis_url: str) -> None:
    await seed_spam(database_url)
    queue = f"hub-test-{uuid.uuid4().hex}"
    pool = await create_pool(redis_settings(redis_url), default_queue_name=queue)
    try:
        job = await pool.enqueue_job("prune_spam", _job_id=f"prune:{queue}")
        assert job is not None
        assert await pool.enqueue_job("prune_spam", _job_id=f"prune:{queue}") is None  # same id: not queued twice
        worker = build_worker(
            make_settings(database_url, redis_url=redis_url),
            burst=True,
            queue_name=queue,
            handle_signals=False,
            poll_delay=0.05,
            cron_jobs=[],  # the send cron ticks every second: a burst with it would never find the queue empty
        )
        try:
            await worker.main()
        finally:
            await worker.close()
        assert await job.result(timeout=5) == 2
        assert await remaining(database_url) == ["lead-old", "spam-0", "spam-1"]
        assert worker.jobs_complete == 1
        assert worker.jobs_failed == 0
    finally:
        await pool.aclose()


async def test_prune_spam_is_safe_to_run_twice(sqlite_url: str) -> None:
    await seed_spam(sqlite_url)
    engine = create_engine(sqlite_url)
    ctx = {"sessions": create_sessionmaker(engine), "settings": make_settings(sqlite_url)}
    assert await prune_spam(ctx) == 2
    assert await prune_spam(ctx) == 0
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(InboundEvent)) == 3
    await engine.dispose()


def test_each_jobs_arq_schedule_runs_it_as_often_as_the_embedded_runner_does() -> None:
    """``every`` (the embedded runner's interval) and the cron fields (``hub worker``'s) must say the same: a
    deadline job every 5 s embedded but every 10 s under arq let first-touch deadlines pass 5 s late."""
    for job in PERIODIC_JOBS:
        minutes = (
            range(60) if job.minute is None else sorted({job.minute} if isinstance(job.minute, int) else job.minute)
        )
        seconds = sorted({job.second} if isinstance(job.second, int) else job.second)
        fires = [m * 60 + s for m in minutes for s in seconds]
        gaps = {(later - earlier) % 3600 or 3600 for earlier, later in zip(fires, [*fires[1:], fires[0]], strict=True)}
        assert gaps == {int(job.every.total_seconds())}, (job.name, sorted(gaps), job.every)
