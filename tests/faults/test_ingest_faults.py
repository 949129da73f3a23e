"""Webhook ingest keeps every acknowledged event exactly once: ``hub serve`` in its own process on PostgreSQL,
fed signed provider callbacks over real HTTP, while PostgreSQL crashes and restarts, and while every event
arrives three times at once.

A 2xx is the hub's promise that the event is stored: an event acknowledged before a crash is still there
after it, and a redelivery (the provider's retry, or a storm of copies) never stores it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.auth import service as auth
from hub.contacts.models import Contact, ContactIdentity
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.forms import service as forms
from hub.forms.schemas import SourceCreate
from hub.sealing import SecretBox
from tests.conftest import TEST_SECRET_KEY
from tests.faults.effects import call_effects, email_effects, exactly_once_problems, form_effects
from tests.faults.harness import wait_until
from tests.faults.providers import (
    Attempts,
    Delivery,
    call_sid,
    contact_phone,
    deliver,
    form_post,
    postmark_delivered,
    sendgrid_delivered,
    twilio_status,
)
from tests.faults.servers import PrivateCluster, hub_env, start_hub_server

CALLS = 120
LEADS = 120
IN_FLIGHT = 16
"""Requests in flight at once: enough that a crash lands in the middle of several."""
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)
"""Idle connections are dropped before uvicorn's 5 s keep-alive closes them: otherwise a request sent just as
the server closes its connection gets no answer, a race of the client's making, not the hub's."""


def interleaved(*streams: list[Delivery]) -> list[Delivery]:
    """One delivery of each stream in turn, so every kind is in flight when the fault strikes."""
    return [delivery for group in zip(*streams, strict=True) for delivery in group]


async def deliver_all(
    client: httpx.AsyncClient, deliveries: list[Delivery], attempts: Attempts, acknowledged: list[Delivery]
) -> None:
    """Deliver each one (with retries), IN_FLIGHT at a time; ``acknowledged`` grows as 2xx answers come."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(delivery: Delivery) -> None:
        async with slots:
            await deliver(client, delivery, attempts, within=60)
        acknowledged.append(delivery)

    await asyncio.gather(*(one(d) for d in deliveries))


async def restart_after(cluster: PrivateCluster, acknowledged: list[Delivery], count: int) -> float:
    """Crash and restart PostgreSQL once ``count`` events are acknowledged; returns when it was back."""

    async def enough() -> bool:
        return len(acknowledged) >= count

    await wait_until(enough, within=60, what=f"{count} acknowledged events before the restart")
    await asyncio.to_thread(cluster.restart, "immediate")
    return time.monotonic()


async def ingest_effects(database_url: str) -> dict[str, Counter[str]]:
    return {**await call_effects(database_url), **await form_effects(database_url)}


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "extra_env", [pytest.param({}, id="inline"), pytest.param({"HUB_INGEST_MODE": "deferred"}, id="deferred")]
)
async def test_postgresql_restart_during_ingest_loses_no_acknowledged_event(
    cluster: PrivateCluster, sendgrid_key: ec.EllipticCurvePrivateKey, tmp_path: Path, extra_env: dict[str, str]
) -> None:
    server = await start_hub_server(hub_env(cluster.url, sendgrid_key, **extra_env), tmp_path)
    deliveries = interleaved([twilio_status(n) for n in range(CALLS)], [form_post(n) for n in range(LEADS)])
    attempts = Attempts()
    acknowledged: list[Delivery] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10, limits=CLIENT_LIMITS) as client:
            restart = asyncio.create_task(restart_after(cluster, acknowledged, len(deliveries) // 3))
            await deliver_all(client, deliveries, attempts, acknowledged)
            finished = time.monotonic()
            back = await restart
        print(f"answers while PostgreSQL restarted: {attempts}")
        assert back < finished, "the restart did not happen while events were still coming in"
        failed = sum(n for status, n in attempts.statuses.items() if not 200 <= status < 300)
        assert failed, f"no request met the outage, so nothing was tested: {attempts}"

        expected = {
            "calls": [call_sid(n) for n in range(CALLS)],
            "call timeline entries": [f"call:{call_sid(n)}" for n in range(CALLS)],
            "form submissions": [f"lead{n}@example.org" for n in range(LEADS)],
        }

        # Polled: with deferred ingest a 2xx means "accepted durably", applied by the server's embedded
        # worker moments later (so the server keeps running until then).
        async def all_applied() -> bool:
            effects = await ingest_effects(cluster.url)
            return all(set(keys) <= set(effects[name]) for name, keys in expected.items())

        try:
            await wait_until(all_applied, within=30, what="every acknowledged event to be applied")
        finally:  # applied or not, say what is missing or doubled
            problems = exactly_once_problems(await ingest_effects(cluster.url), expected)
            assert not problems, f"{problems}; answers during the outage: {attempts}"
    finally:
        server.stop()
    outage = {status: n for status, n in attempts.statuses.items() if not 200 <= status < 300}
    assert set(outage) == {503}, (
        f"a database outage must be a 503 (retry later), not {outage} (0: no answer); {attempts}\n{server.log()}"
    )
    assert "none" not in attempts.retry_after, f"a 503 for an outage should say when to retry: {attempts}"
    assert attempts.slowest < 5, f"the hub hung for {attempts.slowest:.1f} s during the outage"


async def nothing_waiting(database_url: str) -> bool:
    """Deferred mode: no accepted event is left to apply."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return not await connection.scalar(text("SELECT count(*) FROM accepted_events"))
    finally:
        await engine.dispose()


async def seed_known(database_url: str, *, phones: list[str], emails: list[str]) -> None:
    """The contacts the events are about (calls a rep placed, mail the hub sent), so each event lands on a
    timeline; plus what ``hub serve`` creates on a first start, so two servers starting at once do not race."""
    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await auth.create_key(session, name="fault admin", role="admin")
            await forms.create_source(session, SourceCreate(slug="website", name="Website"), SecretBox(TEST_SECRET_KEY))
            identities = [("phone", phone) for phone in phones] + [("email", email) for email in emails]
            contacts = [Contact(name=value, stage="new") for _, value in identities]
            session.add_all(contacts)
            await session.flush()
            session.add_all(
                ContactIdentity(contact_id=contact.id, kind=kind, value=value)
                for contact, (kind, value) in zip(contacts, identities, strict=True)
            )
    finally:
        await engine.dispose()


def refusal(outcome: httpx.Response | BaseException) -> str | None:
    """Why a delivery was not acknowledged, or None when it was."""
    if isinstance(outcome, BaseException):
        return f"no answer: {outcome!r}"
    return None if outcome.is_success else f"{outcome.status_code} {outcome.text[:200]}"


STORM_CALLS, STORM_SENDGRID, STORM_POSTMARK = 200, 400, 400
COPIES = 3
SERVERS = 2
"""API processes behind one address, as at scale: a provider's redeliveries reach any of them."""


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    "extra_env", [pytest.param({}, id="inline"), pytest.param({"HUB_INGEST_MODE": "deferred"}, id="deferred")]
)
async def test_replay_storm_of_three_copies_at_once_has_one_effect_per_event(
    pg_url: str, sendgrid_key: ec.EllipticCurvePrivateKey, tmp_path: Path, extra_env: dict[str, str]
) -> None:
    # Deferred: each server runs several group commits at once (HUB_ACCEPT_COMMITS_IN_FLIGHT), so the copies of
    # one event meet in concurrent INSERTs, on one server and across both; none may deadlock or be refused, and
    # each event's effects must happen once.
    sendgrid_readers = [f"reader{n}@example.org" for n in range(STORM_SENDGRID)]
    postmark_readers = [f"reader{n}@example.org" for n in range(STORM_SENDGRID, STORM_SENDGRID + STORM_POSTMARK)]
    await seed_known(
        pg_url, phones=[contact_phone(n) for n in range(STORM_CALLS)], emails=sendgrid_readers + postmark_readers
    )
    events = (
        [twilio_status(n) for n in range(STORM_CALLS)]
        + [sendgrid_delivered(n, sendgrid_key) for n in range(STORM_SENDGRID)]
        + [postmark_delivered(n) for n in range(STORM_SENDGRID, STORM_SENDGRID + STORM_POSTMARK)]
    )
    env = hub_env(pg_url, sendgrid_key, **extra_env)
    deferred = bool(extra_env)
    servers = list(await asyncio.gather(*(start_hub_server(env, tmp_path) for _ in range(SERVERS))))
    slots = asyncio.Semaphore(COPIES * IN_FLIGHT)

    async def post(client: httpx.AsyncClient, delivery: Delivery) -> httpx.Response:
        async with slots:
            return await client.post(delivery.path, content=delivery.content, headers=delivery.headers)

    started = [server.cpu_seconds() for server in servers]
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=CLIENT_LIMITS)
                )
                for server in servers
            ]
            # The copies of one event are next to each other, so they are in flight together, on different servers.
            begun = time.monotonic()
            outcomes = await asyncio.gather(
                *(post(clients[(n + copy) % SERVERS], e) for n, e in enumerate(events) for copy in range(COPIES)),
                return_exceptions=True,
            )
        spent = [server.cpu_seconds() - before for server, before in zip(servers, started, strict=True)]
        print(f"{len(outcomes)} deliveries in {time.monotonic() - begun:.1f} s; CPU s per hub process: {spent}")
        refused = [reason for outcome in outcomes if (reason := refusal(outcome))]
        logs = "\n".join(server.log() for server in servers)
        assert not refused, f"{len(refused)} copies were not acknowledged, e.g. {refused[:3]}\n{logs}"
        answers = [outcome for outcome in outcomes if isinstance(outcome, httpx.Response)]
        emails = STORM_SENDGRID + STORM_POSTMARK
        if deferred:
            # "accepted" means new to the queue: a copy that arrives after the worker applied (and removed) the
            # first is queued again, and applying it changes nothing (the effects below prove it).
            accepted = sum(a.json()["accepted"] for a in answers if a.request.url.path.startswith("/webhooks/email/"))
            assert accepted >= emails, "every email event was accepted at least once"
            # The servers' embedded workers apply what was accepted; they keep running until then.
            await wait_until(lambda: nothing_waiting(pg_url), within=60, what="every accepted event to be applied")
        else:
            stored = sum(a.json()["stored"] for a in answers if a.request.url.path.startswith("/webhooks/email/"))
            assert stored == emails, "the hub reports each email event stored exactly once"
    finally:
        for server in servers:
            server.stop()

    effects = {
        **await call_effects(pg_url),
        **await email_effects(pg_url, "sendgrid"),
        **await email_effects(pg_url, "postmark"),
    }
    expected = {
        "calls": [call_sid(n) for n in range(STORM_CALLS)],
        "call timeline entries": [f"call:{call_sid(n)}" for n in range(STORM_CALLS)],
        "sendgrid events": sendgrid_readers,
        "sendgrid timeline entries": sendgrid_readers,
        "postmark events": postmark_readers,
        "postmark timeline entries": postmark_readers,
    }
    problems = exactly_once_problems(effects, expected)
    assert not problems, problems
