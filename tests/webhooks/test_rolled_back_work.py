"""Work a rollback undid leaves no effects: the automation at the next commit reacts only to what exists.

Timeline entries written in a savepoint that PostgreSQL's deadlock detector rolled back (and that
``retry_transient`` then writes anew), or in an apply that failed before the worker committed the event's
postponement, must not reach routing, alerts or outbound webhooks: they would publish a lead twice, or
for an event that is not applied yet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from hub import ingest
from hub.accepted import apply_accepted
from hub.contacts import service as contacts
from hub.contacts.normalize import Identity
from hub.outbound.models import WebhookDelivery
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock, truncate_all

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
ADA = {"email": "ada@example.com", "name": "Ada Lovelace"}


class _DeadlockDetected(Exception):
    """What asyncpg raises for SQLSTATE 40P01, as far as the hub looks at it."""

    sqlstate = "40P01"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


async def _subscribe(hub: Hub) -> None:
    """A webhook endpoint for every event, and Ada known already (imported, say): her first form makes her a lead,
    and what the form's rolled-back attempt wrote names her existing contact."""
    await hub.create_source(slug="website", name="Website")
    async with hub.session() as session:
        await contacts.resolve_contact(
            session,
            [Identity("email", ADA["email"])],
            contacts.Profile(),
            source="import",
            attribution={},
            merge_reason="",
        )
        await session.commit()
    subscribed = await hub.client.post(
        "/api/webhook-endpoints", json={"url": "https://crm.example.com/hook", "event_types": ["*"]}, headers=hub.auth()
    )
    assert subscribed.status_code == 201, subscribed.text


def _fail_after_the_entry_is_written(monkeypatch: pytest.MonkeyPatch, error: Exception, times: int) -> list[int]:
    """The form's consent step (run after its timeline entry is flushed) raises ``error`` ``times`` times."""
    original = ingest.consent.consent_from_form
    calls: list[int] = []

    async def failing(session: Any, contact_id: int, event: Any) -> None:
        calls.append(contact_id)
        if len(calls) <= times:
            raise error
        await original(session, contact_id, event)

    monkeypatch.setattr(ingest.consent, "consent_from_form", failing)
    return calls


async def _published(hub: Hub) -> tuple[list[int], list[tuple[str, int | None]]]:
    async with hub.session() as session:
        entries = list(await session.scalars(select(TimelineEntry.id).where(TimelineEntry.kind == "form_submission")))
        deliveries = (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
        return entries, [(d.event_type, d.payload["data"].get("timeline_entry_id")) for d in deliveries]


async def test_on_postgresql_a_form_post_retried_after_a_deadlock_publishes_its_lead_once(
    pg_database: str, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await truncate_all(pg_database)
    async for hub in start_hub(make_settings(pg_database)):
        await _subscribe(hub)
        deadlock = DBAPIError("UPDATE contacts ...", {}, _DeadlockDetected("deadlock detected"))
        calls = _fail_after_the_entry_is_written(monkeypatch, deadlock, times=1)
        posted = await hub.client.post("/webhooks/forms/website", json=ADA)
        assert posted.status_code == 202, posted.text
        assert len(calls) == 2  # rolled back to its savepoint once, then applied
        entries, deliveries = await _published(hub)
        assert len(entries) == 1
        assert [event for event, _ in deliveries].count("lead.created") == 1
        assert {entry_id for _, entry_id in deliveries} <= {*entries, None}


async def test_an_event_that_fails_to_apply_publishes_nothing_until_it_is_applied(
    database_url: str, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    async for hub in start_hub(make_settings(database_url, ingest_mode="deferred")):
        await _subscribe(hub)
        assert (await hub.client.post("/webhooks/forms/website", json=ADA)).status_code == 202
        calls = _fail_after_the_entry_is_written(monkeypatch, RuntimeError("the consent store is broken"), times=2)
        report = await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)
        assert (report.applied, len(report.failed), len(calls)) == (0, 1, 2)  # the batch, then the event alone
        # Postponed with its error: nothing it wrote stands, so nothing may be published for it.
        assert await _published(hub) == ([], [])
        frozen.advance(61)
        report = await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)
        assert report.applied == 1
        entries, deliveries = await _published(hub)
        assert len(entries) == 1
        assert [event for event, _ in deliveries].count("lead.created") == 1
