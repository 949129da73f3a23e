"""The worker survives faults without losing or doubling an email: real ``hub worker`` processes on
PostgreSQL and Redis, SIGKILLed or with Redis flushed mid-campaign, or three of them sharing one
campaign, sending to a real SMTP sink.

Every message ends ``sent`` (received exactly once) or ``unknown`` (its worker died while handing it to
SMTP: received at most once, never re-sent); none stays queued, none is received twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from hub import clock
from hub.contacts.models import Contact, ContactIdentity
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import SequenceSpec, Step
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


async def seed_campaign(database_url: str, readers: int) -> None:
    """A two-step sequence (no window, no delay) with ``readers`` contacts enrolled and due now."""
    engine = create_engine(database_url)
    now = clock.now()
    spec = SequenceSpec(
        name="Launch",
        window=None,
        marketing=False,
        steps=[
            Step(key="announce", subject="We launched", text="Hello {{ contact.first_name }}"),
            Step(key="follow-up", subject="Did you see it?", text="Hello again"),
        ],
    )
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            sequence = Sequence(name="Launch", spec=spec.model_dump(mode="json"), status="active")
            session.add(sequence)
            await session.flush()
            for n in range(readers):
                contact = Contact(name=f"Reader {n}", stage="new", created_at=now, updated_at=now)
                session.add(contact)
                await session.flush()
                session.add(ContactIdentity(contact_id=contact.id, kind="email", value=f"reader{n}@example.org"))
                session.add(
                    Enrollment(
                        sequence_id=sequence.id,
                        contact_id=contact.id,
                        status="active",
                        step_index=0,
                        next_run_at=now,
                        trigger="test",
                        enrolled_at=now,
                    )
                )
    finally:
        await engine.dispose()


async def campaign_done(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            active = await session.scalar(select(func.count()).where(Enrollment.status == "active"))
    finally:
        await engine.dispose()
    return active == 0 and await settled(database_url)


async def test_three_worker_processes_share_a_campaign_and_send_each_step_once(
    pg_url: str, fault_redis: str, sink: SmtpSink, tmp_path: Path
) -> None:
    await flush(fault_redis)
    readers = 150
    await seed_campaign(pg_url, readers)
    env = worker_env(pg_url, fault_redis, sink, HUB_SEND_BATCH_SIZE="20")
    with workers(env, tmp_path) as started:
        for _ in range(3):
            start_worker(env, tmp_path, started)
        await wait_until(lambda: campaign_done(pg_url), within=120, what="both steps sent to every reader")
    sent = await ids_with_status(pg_url, "sent")
    assert len(sent) == 2 * readers
    received = received_ids(sink)
    assert set(received) == sent and max(received.values()) == 1, "every step's email received exactly once"
    subjects = Counter(str(r.message["Subject"]) for r in sink.received)
    assert subjects == {"We launched": readers, "Did you see it?": readers}
