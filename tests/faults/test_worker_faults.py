"""The worker survives faults without losing or doubling an email: real ``hub worker`` processes on
PostgreSQL and Redis, SIGKILLed or with Redis flushed mid-campaign, sending to a real SMTP sink.

Every message ends ``sent`` (received exactly once) or ``unknown`` (its worker died while handing it to
SMTP: received at most once, never re-sent); none stays queued, none is received twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hub.db import create_engine, create_sessionmaker, session_scope
from hub.mail.outbox import Envelope, fill_message, reserve_message
from tests.conftest import truncate_all
from tests.faults.harness import (
    ids_with_status,
    received_ids,
    start_worker,
    statuses,
    wait_until,
    worker_env,
    workers,
)
from tests.mail_sink import SmtpSink, running_sink

RECIPIENTS = 500
FAULT_REDIS_DB = 13
"""A Redis database of its own, so flushing it touches nothing else."""


@pytest.fixture
def pg_url(pg_database: str) -> str:
    asyncio.run(truncate_all(pg_database))
    return pg_database


@pytest.fixture
def fault_redis(redis_url: str) -> str:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    return f"{base}/{FAULT_REDIS_DB}"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with running_sink() as running:
        yield running


async def flush(url: str) -> None:
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def queue_campaign(database_url: str, count: int) -> None:
    """A campaign step's messages, queued as the sequence engine queues them."""
    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            for n in range(count):
                envelope = Envelope(
                    recipient=f"reader{n}@example.org", kind="sequence", dedupe_key=f"fault:{n}", marketing=True
                )
                message = await reserve_message(session, envelope, mail_from="News <news@example.com>")
                assert message is not None
                fill_message(message, subject=f"Issue {n}", html=f"<p>Hello {n}</p>", text=f"Hello {n}", links=None)
    finally:
        await engine.dispose()


async def settled(database_url: str) -> bool:
    counts = await statuses(database_url)
    return counts["queued"] == 0 and counts["sending"] == 0


def assert_exactly_once(sink: SmtpSink, sent: set[int], unknown: set[int]) -> None:
    received = received_ids(sink)
    doubled = {message_id: n for message_id, n in received.items() if n > 1}
    assert not doubled, f"received more than once: {doubled}"
    assert set(received) - sent - unknown == set(), "the sink got messages the hub does not count as sent"
    missing = sent - set(received)
    assert not missing, f"marked sent but never received: {sorted(missing)[:10]}"
    assert len(sent) + len(unknown) == RECIPIENTS, "a message was lost (neither sent nor reported unknown)"


async def test_sigkill_mid_campaign_loses_nothing_and_sends_nothing_twice(
    pg_url: str, fault_redis: str, sink: SmtpSink, tmp_path: Path
) -> None:
    await flush(fault_redis)
    await queue_campaign(pg_url, RECIPIENTS)
    # Slow enough (200/s) that each kill lands in the middle of the send.
    env = worker_env(pg_url, fault_redis, sink, HUB_SEND_RATE_PER_SECOND="200", HUB_SEND_BATCH_SIZE="50")
    with workers(env, tmp_path) as started:
        for kill_after in (100, 300):
            worker = start_worker(env, tmp_path, started)
            await sink.wait_for(kill_after, within=60)
            worker.kill()
        start_worker(env, tmp_path, started)
        await wait_until(lambda: settled(pg_url), within=90, what="every message sent or reported unknown")
    unknown = await ids_with_status(pg_url, "unknown")
    assert len(unknown) <= 2 * 4, f"only messages in flight at a kill may be unknown, got {len(unknown)}"
    assert_exactly_once(sink, await ids_with_status(pg_url, "sent"), unknown)


async def test_redis_flushed_mid_campaign_still_sends_every_message_once(
    pg_url: str, fault_redis: str, sink: SmtpSink, tmp_path: Path
) -> None:
    await flush(fault_redis)
    await queue_campaign(pg_url, RECIPIENTS)
    env = worker_env(pg_url, fault_redis, sink, HUB_SEND_RATE_PER_SECOND="200", HUB_SEND_BATCH_SIZE="50")
    with workers(env, tmp_path) as started:
        start_worker(env, tmp_path, started)
        await sink.wait_for(150, within=60)
        await flush(fault_redis)  # every queued job, in-progress mark and cron id is gone
        await wait_until(lambda: settled(pg_url), within=90, what="every message sent after the flush")
    assert await ids_with_status(pg_url, "unknown") == set()
    assert_exactly_once(sink, await ids_with_status(pg_url, "sent"), set())
