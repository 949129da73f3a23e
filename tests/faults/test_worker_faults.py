"""The worker survives faults without losing or doubling an email or a due action: real ``hub worker``
processes on PostgreSQL and Redis, SIGKILLed again and again, with Redis flushed and then crashed and
restarted empty, or three of them sharing one campaign and one deadline queue, sending to a real SMTP sink.

Every message ends ``sent`` (received exactly once) or ``unknown`` (its worker died while handing it to
SMTP: received at most once, never re-sent, and listed); none stays queued, none is received twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
from arq.connections import create_pool
from arq.jobs import Job
from redis.asyncio import Redis
from sqlalchemy import func, select

from hub.db import create_engine, create_sessionmaker
from hub.routing.models import Assignment, Deadline
from hub.sequences.models import Enrollment
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry
from hub.worker import redis_settings
from tests.faults.harness import (
    WorkerProcess,
    ids_with_status,
    received_ids,
    start_worker,
    statuses,
    wait_until,
    worker_env,
    workers,
)
from tests.faults.seeds import DEADLINE_RULES, DueWork, queue_campaign, seed_campaign, seed_due_work
from tests.faults.servers import private_redis
from tests.mail_sink import SmtpSink

KILLS = 5
REDIS_OUTAGE_SECONDS = 2.0
SMTP_LANES = 4
"""HUB_SMTP_POOL_SIZE's default: at most this many messages are being handed to SMTP when a worker dies."""


async def flush(url: str) -> None:
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def settled(database_url: str) -> bool:
    counts = await statuses(database_url)
    return counts["queued"] == 0 and counts["sending"] == 0


async def settled_by(worker: WorkerProcess, database_url: str) -> bool:
    """Settled, and by this worker: one that exits (e.g. when Redis goes away) fails the test at once."""
    assert worker.process.poll() is None, (
        f"the worker exited instead of waiting for Redis to come back:\n{worker.log_path.read_text()[-3000:]}"
    )
    return await settled(database_url)


def assert_exactly_once(sink: SmtpSink, sent: set[int], unknown: set[int], total: int) -> None:
    received = received_ids(sink)
    doubled = {message_id: n for message_id, n in received.items() if n > 1}
    assert not doubled, f"received more than once: {doubled} (unknown: {sorted(unknown)})"
    assert set(received) - sent - unknown == set(), "the sink got messages the hub does not count as sent"
    missing = sent - set(received)
    assert not missing, f"marked sent but never received: {sorted(missing)[:10]}"
    assert len(sent) + len(unknown) == total, "a message was lost (neither sent nor reported unknown)"


@pytest.mark.timeout(150)
async def test_sigkill_five_times_mid_send_loses_nothing_and_sends_nothing_twice(
    pg_url: str, fault_redis: str, sink: SmtpSink, tmp_path: Path
) -> None:
    recipients = 2000
    await flush(fault_redis)
    await queue_campaign(pg_url, recipients)
    # Fast enough that 2,000 go out in seconds, slow enough that each kill lands in the middle of sending.
    # A 2 s sending timeout lets the next worker's start settle what the killed one left (claims are
    # compare-and-set, so even a live worker's slow batch cannot be sent twice because of it).
    env = worker_env(
        pg_url,
        fault_redis,
        sink,
        HUB_SEND_RATE_PER_SECOND="500",
        HUB_SEND_BATCH_SIZE="50",
        HUB_SENDING_TIMEOUT_SECONDS="2",
    )
    step = recipients // (KILLS + 2)
    with workers(env, tmp_path) as started:
        for kill in range(1, KILLS + 1):
            worker = start_worker(env, tmp_path, started)
            await sink.wait_for(kill * step, within=60)
            assert worker.process.poll() is None, "the worker stopped by itself before it was killed"
            worker.kill()
        start_worker(env, tmp_path, started)
        await wait_until(lambda: settled(pg_url), within=90, what="every message sent or reported unknown")
    unknown = await ids_with_status(pg_url, "unknown")
    print(f"after {KILLS} kills, {len(unknown)} messages are reported unknown: {sorted(unknown)}")
    received = received_ids(sink)
    assert all(received[m] <= 1 for m in unknown), f"an unknown message was received twice: {sorted(unknown)}"
    assert len(unknown) <= KILLS * SMTP_LANES, (
        f"only messages being handed to SMTP at a kill may be unknown, got {len(unknown)}: {sorted(unknown)}"
    )
    assert_exactly_once(sink, await ids_with_status(pg_url, "sent"), unknown, recipients)


@pytest.mark.timeout(150)
async def test_redis_flushed_then_restarted_empty_mid_send_still_sends_every_message_once(
    pg_url: str, sink: SmtpSink, tmp_path: Path
) -> None:
    wave = 300
    with private_redis(tmp_path) as redis:
        env = worker_env(pg_url, redis.url, sink, HUB_SEND_RATE_PER_SECOND="300", HUB_SEND_BATCH_SIZE="50")
        with workers(env, tmp_path) as started:
            worker = start_worker(env, tmp_path, started)
            # Mail falls due in waves, so sending goes on through ticks the worker takes from Redis after each fault.
            await queue_campaign(pg_url, wave)
            await sink.wait_for(wave // 2, within=60)
            await flush(redis.url)  # every queued job, in-progress mark and cron id is gone
            await wait_until(lambda: settled_by(worker, pg_url), within=60, what="the first wave sent after the flush")
            await queue_campaign(pg_url, wave, first=wave)
            await sink.wait_for(wave + wave // 2, within=60)
            redis.kill()  # a crash with no persistence: it comes back empty
            # The outage lasts as long as a restart does, several of the worker's polls (not a wait for work).
            await asyncio.sleep(REDIS_OUTAGE_SECONDS)
            redis.start()
            await wait_until(lambda: settled_by(worker, pg_url), within=60, what="the second wave sent")
            await queue_campaign(pg_url, wave, first=2 * wave)
            await wait_until(lambda: settled_by(worker, pg_url), within=60, what="a third wave sent")
    assert await ids_with_status(pg_url, "unknown") == set()
    assert_exactly_once(sink, await ids_with_status(pg_url, "sent"), set(), 3 * wave)


async def campaign_done(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            active = await session.scalar(select(func.count()).where(Enrollment.status == "active"))
    finally:
        await engine.dispose()
    return active == 0 and await settled(database_url)


async def nothing_due(database_url: str) -> bool:
    """No deadline and no task check is due now and not yet done."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            deadlines = await session.scalar(
                select(func.count()).where(Deadline.done_at.is_(None), Deadline.due_at <= func.now())
            )
            tasks = await session.scalar(
                select(func.count()).where(Task.next_check_at.is_not(None), Task.next_check_at <= func.now())
            )
    finally:
        await engine.dispose()
    return not deadlines and not tasks


async def due_work_effects(database_url: str) -> dict[str, Counter[str]]:
    """Each effect of processing the due work, counted per lead or task."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:

            async def per(column: object, *where: object) -> Counter[str]:
                return Counter(str(v) for v in (await session.scalars(select(column).where(*where))).all())

            task_id = TimelineEntry.data["task_id"].as_string()
            return {
                "breached": await per(Deadline.contact_id, Deadline.outcome == "breached"),
                "sla_breached": await per(TimelineEntry.contact_id, TimelineEntry.kind == "sla_breached"),
                "escalated": await per(Assignment.contact_id, Assignment.how == "escalated"),
                "task_due": await per(task_id, TimelineEntry.kind == "task_due"),
                "task_overdue": await per(task_id, TimelineEntry.kind == "task_overdue"),
                "task_escalated": await per(task_id, TimelineEntry.kind == "task_escalated"),
            }
    finally:
        await engine.dispose()


def due_work_problems(effects: dict[str, Counter[str]], work: DueWork) -> list[str]:
    leads = {str(c) for c in work.missed_leads}
    expected = {
        "breached": leads,
        "sla_breached": leads,
        "escalated": leads,
        "task_due": {str(t) for t in work.to_remind},
        "task_overdue": {str(t) for t in work.overdue},
        "task_escalated": {str(t) for t in work.overdue},
    }
    problems = []
    for name, keys in expected.items():
        seen = effects[name]
        if set(seen) != keys or max(seen.values(), default=0) > 1:
            twice = {k: n for k, n in seen.items() if n > 1}
            problems.append(f"{name}: {len(keys - set(seen))} missing, {len(twice)} twice (e.g. {list(twice)[:5]})")
    return problems


@pytest.mark.timeout(150)
async def test_three_worker_processes_share_a_campaign_and_a_deadline_queue_and_do_each_thing_once(
    pg_url: str, fault_redis: str, sink: SmtpSink, tmp_path: Path
) -> None:
    await flush(fault_redis)
    readers = 150
    await seed_campaign(pg_url, readers)
    work = await seed_due_work(pg_url, leads=150, tasks=200)
    env = worker_env(pg_url, fault_redis, sink, HUB_SEND_BATCH_SIZE="20", HUB_RULES_FILE=str(DEADLINE_RULES))
    arq = await create_pool(redis_settings(fault_redis))
    try:
        with workers(env, tmp_path) as started:
            for _ in range(3):
                start_worker(env, tmp_path, started)
            # Besides the cron ticks (one job per tick), three runs of each job at once: as after a Redis
            # flush or a retry, when arq runs a job more than once by design. Each row must still be done once.
            jobs = []
            for name in ("process_deadlines", "process_tasks"):
                for _ in range(3):
                    job = await arq.enqueue_job(name, _job_id=f"fault:{name}:{uuid.uuid4().hex}")
                    assert job is not None
                    jobs.append(job.job_id)
            await wait_until(lambda: campaign_done(pg_url), within=120, what="both steps sent to every reader")
            await wait_until(lambda: nothing_due(pg_url), within=60, what="every due deadline and task check done")
            processed = {job_id: await Job(job_id, arq).result(timeout=30) for job_id in jobs}
    finally:
        await arq.aclose()
    print(f"rows each extra job run processed: {processed}")
    sent = await ids_with_status(pg_url, "sent")
    assert len(sent) == 2 * readers
    received = received_ids(sink)
    assert set(received) == sent and max(received.values()) == 1, "every step's email received exactly once"
    subjects = Counter(str(r.message["Subject"]) for r in sink.received)
    assert subjects == {"We launched": readers, "Did you see it?": readers}
    problems = due_work_problems(await due_work_effects(pg_url), work)
    assert not problems, f"{problems}; rows each extra run processed: {processed}"
