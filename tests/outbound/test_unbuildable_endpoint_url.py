"""An endpoint URL httpx cannot build a request for (a host IDNA refuses) fails its own delivery, not the whole
batch: otherwise no outcome of the batch is recorded, and every other endpoint's delivery that was POSTed (and
answered 2xx) is POSTed again after the lease, run after run. The API refuses such a URL now; one stored before it
did is written straight to the database here."""

from __future__ import annotations

from sqlalchemy import select

from hub.outbound.delivery import deliver_due
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from hub.outbound.publish import publish
from tests.conftest import Hub
from tests.outbound.receiver import running_receiver


async def test_an_unbuildable_endpoint_url_does_not_lose_the_batch_outcomes(hub: Hub) -> None:
    async with running_receiver() as receiver:
        good = await hub.client.post(
            "/api/webhook-endpoints", json={"url": receiver.url, "event_types": ["call.missed"]}, headers=hub.auth()
        )
        bad = await hub.client.post(
            "/api/webhook-endpoints",
            json={"url": "https://bad.example/hook", "event_types": ["call.missed"]},
            headers=hub.auth(),
        )
        assert (good.status_code, bad.status_code) == (201, 201), bad.text
        async with hub.session() as session:
            stored = await session.get(WebhookEndpoint, bad.json()["id"])
            assert stored is not None
            stored.url = "https://\u2603.example/hook"
            await session.commit()
        async with hub.session() as session:
            await publish(session, "call.missed", {"call_id": 1}, event_key="call:1", contact_id=7)
            await session.commit()
        runtime = hub.runtime
        assert await deliver_due(runtime.sessions, runtime.http, runtime.box, runtime.settings, limit=100) == 2
        async with hub.session() as session:
            rows = {d.endpoint_id: d for d in (await session.scalars(select(WebhookDelivery))).all()}
        assert len(receiver.received) == 1
        assert rows[good.json()["id"]].status == "delivered"
        failed = rows[bad.json()["id"]]
        assert (failed.status, failed.attempts, failed.last_status_code) == ("pending", 1, None)
