"""Outbound webhooks end to end: events published with the change that caused them, POSTed to a real local
receiver that verifies the Standard Webhooks signature with the reference library, retried on schedule,
410 disabling the endpoint, redirects not followed, and N concurrent workers delivering each event once."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from hub.outbound.delivery import (
    ATTEMPT_OFFSETS,
    CONCURRENCY,
    Claimed,
    Outcome,
    attempt,
    claim_due,
    deliver_due,
    next_attempt_at,
    parse_retry_after,
    record,
)
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from hub.outbound.publish import event_id_for, publish
from hub.outbound.service import new_secret
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock, truncate_all
from tests.outbound.receiver import Receiver, running_receiver


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    """The hub's clock stopped at the real time (receivers check the timestamp against their own clock)."""
    yield from stopped_clock(datetime.now(UTC).replace(microsecond=0))


async def subscribe(hub: Hub, url: str, event_types: list[str], **extra: Any) -> tuple[int, str]:
    response = await hub.client.post(
        "/api/webhook-endpoints", json={"url": url, "event_types": event_types, **extra}, headers=hub.auth()
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["secret"]


async def deliver(hub: Hub, limit: int = 100) -> int:
    runtime = hub.runtime
    return await deliver_due(runtime.sessions, runtime.http, runtime.box, runtime.settings, limit=limit)


async def deliveries(hub: Hub) -> list[WebhookDelivery]:
    async with hub.session() as session:
        return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


async def publish_one(hub: Hub, key: str, event_type: str = "call.missed") -> None:
    async with hub.session() as session:
        await publish(session, event_type, {"call_id": 1}, event_key=key, contact_id=7)


def verified(secret: str, receiver: Receiver) -> list[dict[str, Any]]:
    """Every request's payload, each checked with the reference library (raises on a bad signature)."""
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.received]


async def test_lead_events_reach_a_real_receiver_signed(hub: Hub) -> None:
    rep_a, rep_b = await hub.create_rep("Ann"), await hub.create_rep("Bob")
    async with running_receiver() as receiver:
        endpoint_id, secret = await subscribe(
            hub, receiver.url, ["lead.created", "lead.assigned", "lead.reassigned", "task.due"]
        )
        created = await hub.client.post(
            "/api/contacts", json={"email": "ada@example.com", "name": "Ada Lovelace"}, headers=hub.auth()
        )
        contact_id = created.json()["contact_id"]
        for rep in (rep_a, rep_b):
            response = await hub.client.post(
                f"/api/contacts/{contact_id}/assign", json={"rep_id": rep, "reason": "test"}, headers=hub.auth()
            )
            assert response.status_code == 201, response.text
        # A rolled-back change publishes nothing (the outbox is the caller's transaction).
        async with hub.runtime.sessions() as session:
            await publish(session, "task.due", {}, event_key="rolled-back", contact_id=contact_id)
            await session.rollback()

        assert await deliver(hub) == 3
        assert await deliver(hub) == 0  # nothing left: each event once

        payloads = verified(secret, receiver)
        assert sorted(p["type"] for p in payloads) == ["lead.assigned", "lead.created", "lead.reassigned"]
        by_type = {p["type"]: p for p in payloads}
        assert by_type["lead.created"]["data"]["contact"]["id"] == contact_id
        assert by_type["lead.created"]["data"]["emails"] == ["ada@example.com"]
        assert by_type["lead.assigned"]["data"]["rep_id"] == rep_a
        assert by_type["lead.reassigned"]["data"]["rep_id"] == rep_b
        assert all(len(r.body) < 20_000 for r in receiver.received)
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 3

    log = await hub.client.get(f"/api/webhook-endpoints/{endpoint_id}/deliveries?limit=2", headers=hub.auth())
    page = log.json()
    assert [d["status"] for d in page["items"]] == ["delivered", "delivered"]
    assert page["items"][0]["log"][0]["status_code"] == 200
    rest = await hub.client.get(
        f"/api/webhook-endpoints/{endpoint_id}/deliveries?cursor={page['next_cursor']}", headers=hub.auth()
    )
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None


async def test_a_delivery_being_posted_cannot_be_retried_into_a_second_post(
    sqlite_hub: Hub, frozen: FrozenClock
) -> None:
    # A run claimed the delivery and is posting it. A manual retry now would make it due again, and the next run
    # would post it a second time while the first POST is still out.
    hub = sqlite_hub
    async with running_receiver() as receiver:
        await subscribe(hub, receiver.url, ["call.missed"])
        await publish_one(hub, "timeline:1")
        async with hub.session() as session:
            [claimed] = await claim_due(session, frozen.at, frozen.at + timedelta(seconds=60), limit=10)

        async def retry() -> httpx.Response:
            return await hub.client.post(f"/api/webhook-deliveries/{claimed.delivery_id}/retry", headers=hub.auth())

        refused = await retry()
        assert (refused.status_code, refused.json()["field"]) == (409, "delivery_id")
        [delivery] = await deliveries(hub)
        assert (delivery.status, delivery.leased_until) == ("pending", frozen.at + timedelta(seconds=60))
        assert await deliver(hub) == 0  # not due: the run holding it posts it, nobody else

        # The run records its outcome (the receiver failed): the lease ends, and a retry is the operator's call.
        async with hub.session() as session:
            await record(session, claimed, Outcome(503, "HTTP 503", 12), frozen.at, random.Random(0))
        assert (await retry()).status_code == 202
        assert await deliver(hub) == 1
        assert len(receiver.received) == 1
        [delivery] = await deliveries(hub)
        assert (delivery.status, delivery.leased_until) == ("delivered", None)


async def test_a_delivery_whose_worker_died_can_be_retried_once_its_lease_has_passed(
    sqlite_hub: Hub, frozen: FrozenClock
) -> None:
    await subscribe(sqlite_hub, "http://127.0.0.1:9/hook", ["call.missed"])
    await publish_one(sqlite_hub, "timeline:1")
    async with sqlite_hub.session() as session:
        [claimed] = await claim_due(session, frozen.at, frozen.at + timedelta(seconds=60), limit=10)
    path = f"/api/webhook-deliveries/{claimed.delivery_id}/retry"
    assert (await sqlite_hub.client.post(path, headers=sqlite_hub.auth())).status_code == 409
    frozen.advance(61)  # the worker was killed mid-request: nobody records its outcome
    assert (await sqlite_hub.client.post(path, headers=sqlite_hub.auth())).status_code == 202


async def test_a_failed_attempt_is_retried_on_schedule_with_the_same_id(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    async with running_receiver() as receiver:
        _, secret = await subscribe(sqlite_hub, receiver.url, ["call.missed"])
        receiver.answers.append((500, {}))
        await publish_one(sqlite_hub, "timeline:1")
        await publish_one(sqlite_hub, "timeline:1")  # a retried job: the same event, not a second one

        assert await deliver(sqlite_hub) == 1
        [delivery] = await deliveries(sqlite_hub)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
        start = frozen.at
        assert delivery.next_attempt_at is not None
        assert start + timedelta(seconds=5) <= delivery.next_attempt_at <= start + timedelta(seconds=5.5)

        frozen.advance(4)
        assert await deliver(sqlite_hub) == 0  # not due yet
        frozen.at = delivery.next_attempt_at
        assert await deliver(sqlite_hub) == 1

        [delivery] = await deliveries(sqlite_hub)
        assert (delivery.status, delivery.attempts) == ("delivered", 2)
        assert [e["status_code"] for e in delivery.log] == [500, 200]
        first, second = receiver.received
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id_for("call.missed", "timeline:1")
        assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 5
        assert len(verified(secret, receiver)) == 2


async def test_a_410_in_a_batch_does_not_cancel_a_delivery_that_got_its_2xx(sqlite_hub: Hub) -> None:
    async with running_receiver() as receiver:
        await subscribe(sqlite_hub, receiver.url, ["*"])
        receiver.answers.append((410, {}))  # the first request the receiver sees; the other gets 200
        await publish_one(sqlite_hub, "a")
        await publish_one(sqlite_hub, "b")
        assert await deliver(sqlite_hub) == 2
    assert sorted(d.status for d in await deliveries(sqlite_hub)) == ["delivered", "failed"]


async def test_410_disables_the_endpoint_and_cancels_what_it_had_pending(sqlite_hub: Hub) -> None:
    async with running_receiver() as receiver:
        endpoint_id, _ = await subscribe(sqlite_hub, receiver.url, ["*"])
        receiver.answers.append((410, {}))
        await publish_one(sqlite_hub, "a")
        await publish_one(sqlite_hub, "b")
        assert await deliver(sqlite_hub, limit=1) == 1
        assert await deliver(sqlite_hub) == 0
        assert len(receiver.received) == 1

    first, second = await deliveries(sqlite_hub)
    assert (first.status, first.last_status_code, second.status) == ("failed", 410, "cancelled")
    endpoint = (await sqlite_hub.client.get(f"/api/webhook-endpoints/{endpoint_id}", headers=sqlite_hub.auth())).json()
    assert endpoint["enabled"] is False and "410" in endpoint["disabled_reason"]
    async with sqlite_hub.session() as session:
        assert await publish(session, "call.missed", {}, event_key="c") == 0  # a disabled endpoint gets nothing


async def test_a_redirect_is_a_failure_and_is_not_followed(sqlite_hub: Hub) -> None:
    async with running_receiver() as receiver:
        await subscribe(sqlite_hub, receiver.url, ["call.missed"])
        receiver.answers.append((307, {"Location": f"{receiver.base}/elsewhere"}))
        await publish_one(sqlite_hub, "a")
        assert await deliver(sqlite_hub) == 1
        assert [r.path for r in receiver.received] == ["/hook"]

    [delivery] = await deliveries(sqlite_hub)
    assert (delivery.status, delivery.last_status_code) == ("pending", 307)
    assert delivery.last_error is not None and "not followed" in delivery.last_error


async def test_slack_format_posts_readable_text(sqlite_hub: Hub) -> None:
    async with running_receiver() as receiver:
        await subscribe(sqlite_hub, receiver.url, ["lead.created"], format="slack")
        await sqlite_hub.client.post(
            "/api/contacts", json={"email": "ada@example.com", "name": "Ada Lovelace"}, headers=sqlite_hub.auth()
        )
        assert await deliver(sqlite_hub) == 1
        [request] = receiver.received
    assert "webhook-signature" not in request.headers
    text = json.loads(request.body)["text"]
    assert text.startswith("Ada Lovelace (cold) is a new lead") and "/api/contacts/" in text


async def test_concurrent_workers_on_postgresql_deliver_each_event_once(pg_database: str) -> None:
    await truncate_all(pg_database)
    async for hub in start_hub(make_settings(pg_database)):
        async with running_receiver() as receiver:
            await subscribe(hub, receiver.url, ["*"])
            async with hub.session() as session:
                for n in range(60):
                    await publish(session, "call.missed", {"n": n}, event_key=f"event:{n}")
            attempted = await asyncio.gather(*(deliver(hub, limit=10) for _ in range(8)))
            attempted_more = await asyncio.gather(*(deliver(hub, limit=10) for _ in range(8)))
            assert sum(attempted) + sum(attempted_more) == 60
            counts = Counter(r.headers["webhook-id"] for r in receiver.received)
            assert len(counts) == 60 and set(counts.values()) == {1}
        assert {d.status for d in await deliveries(hub)} == {"delivered"}


@pytest.mark.parametrize(
    ("attempts", "retry_after", "expected"),
    [
        (1, None, timedelta(seconds=5)),
        (2, None, timedelta(minutes=5)),
        (5, None, timedelta(hours=5)),
        (9, None, timedelta(hours=24)),
        (10, None, None),  # ten attempts in a day, then it gives up
        (1, timedelta(minutes=2), timedelta(minutes=2)),  # Retry-After longer than the schedule wins
        (1, timedelta(days=3), timedelta(hours=6)),  # ... within reason
        (9, timedelta(hours=6), None),  # ... but never past the day
    ],
)
def test_retry_schedule(attempts: int, retry_after: timedelta | None, expected: timedelta | None) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    now = created + ATTEMPT_OFFSETS[attempts - 1]
    rng = random.Random(0)
    due = next_attempt_at(created, attempts, now, retry_after=retry_after, rng=rng)
    if expected is None:
        assert due is None
        return
    assert due is not None
    if retry_after is not None:
        assert due == now + expected
    else:
        gap = ATTEMPT_OFFSETS[attempts] - ATTEMPT_OFFSETS[attempts - 1]
        assert created + expected <= due <= created + expected + gap * 0.1


def test_behind_schedule_waits_a_whole_gap() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    now = created + timedelta(hours=3)  # attempt 2 ran late (a worker was down)
    due = next_attempt_at(created, 2, now, retry_after=None, rng=random.Random(0))
    assert due == now + (ATTEMPT_OFFSETS[2] - ATTEMPT_OFFSETS[1])


@pytest.mark.parametrize("days_late", [1.5, 3])
def test_a_manual_retry_after_the_events_day_is_the_last_attempt(days_late: float) -> None:
    """WEBHOOKS_OUT.md: a retried delivery that fails again is retried only within the event's day of retries;
    one retried by hand days later gets that one attempt (its schedule's next time had passed long ago)."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    now = created + timedelta(days=days_late)
    assert next_attempt_at(created, 2, now, retry_after=None, rng=random.Random(0)) is None
    early = created + timedelta(hours=2)  # within the day, the same retry is scheduled as ever
    assert next_attempt_at(created, 2, early, retry_after=None, rng=random.Random(0)) is not None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", timedelta(seconds=120)),
        ("Thu, 01 Jan 2026 00:01:00 GMT", timedelta(minutes=1)),
        ("soon", None),
        (None, None),
        ("\u00b2", None),  # '²': str.isdigit says yes, int says no
        ("9" * 20, None),  # past timedelta's range
    ],
)
def test_retry_after_header(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header, datetime(2026, 1, 1, tzinfo=UTC)) == expected


async def test_endpoint_model_keeps_the_secret_sealed(sqlite_hub: Hub) -> None:
    _, secret = await subscribe(sqlite_hub, "https://example.com/hook", ["*"])
    async with sqlite_hub.session() as session:
        endpoint = (await session.scalars(select(WebhookEndpoint))).one()
    assert secret not in endpoint.secret_sealed
    assert sqlite_hub.runtime.box.open(endpoint.secret_sealed) == secret


async def test_a_batch_longer_than_one_request_keeps_its_lease_so_no_other_run_posts_it_too(
    sqlite_hub: Hub, frozen: FrozenClock
) -> None:
    """A run claims up to its limit but POSTs CONCURRENCY at a time: deliveries waiting their turn behind slow
    answers are still its own, so the next tick's run (arq starts one every 5 s) does not post them as well."""
    settings = sqlite_hub.settings
    posted: Counter[str] = Counter()
    second_run: list[int] = []

    async def slow_receiver(request: httpx.Request) -> httpx.Response:
        posted[request.headers["webhook-id"]] += 1
        # Each answer takes most of the timeout: a wave of CONCURRENCY requests moves the clock that far.
        frozen.advance(settings.webhook_timeout_seconds * 0.9 / CONCURRENCY)
        if sum(posted.values()) == 4 * CONCURRENCY + 1 and not second_run:
            # The run of a later tick, while this one is on its fifth wave, a minute after its claim.
            async with httpx.AsyncClient(transport=httpx.MockTransport(slow_receiver)) as other:
                second_run.append(
                    await deliver_due(sqlite_hub.runtime.sessions, other, sqlite_hub.runtime.box, settings, limit=100)
                )
        return httpx.Response(200)

    await subscribe(sqlite_hub, "https://hooks.example.test/in", ["*"])
    async with sqlite_hub.session() as session:
        for n in range(5 * CONCURRENCY):
            await publish(session, "call.missed", {"n": n}, event_key=f"event:{n}")
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_receiver)) as http:
        assert (
            await deliver_due(sqlite_hub.runtime.sessions, http, sqlite_hub.runtime.box, settings, limit=100)
            == 5 * CONCURRENCY
        )

    assert second_run == [0]
    assert len(posted) == 5 * CONCURRENCY and set(posted.values()) == {1}
    assert {d.status for d in await deliveries(sqlite_hub)} == {"delivered"}


async def test_an_attempt_is_cut_off_at_the_timeout_however_the_answer_trickles_in(sqlite_hub: Hub) -> None:
    """httpx times each read on its own; the lease counts on the whole attempt ending within the timeout."""

    async def trickling(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)  # as long as a receiver sending a byte every few seconds for minutes
        return httpx.Response(200)

    claimed = Claimed(
        1, 1, "https://hooks.example.test/in", "standard", sqlite_hub.runtime.box.seal(new_secret()), "msg_1", {}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(trickling)) as http:
        outcome = await attempt(http, claimed, sqlite_hub.runtime.box, 0.05)
    assert (outcome.delivered, outcome.error) == (False, "timed out after 0.05 s")
