"""A lead post replayed after an erasure (an integration's retry queue, a browser's resend) stays the duplicate it
was: erasure hashed its key, and the inbox must still know the event rather than bring the person back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from hub.contacts.models import Contact, ContactIdentity
from hub.inbox import service as inbox
from hub.inbox.models import InboundEvent
from hub.jobs import apply_accepted_events
from hub.privacy.rules import erased_key
from tests.conftest import Hub, make_settings, start_hub
from tests.privacy.helpers import EMAIL, NAME, PHONE, ok

API_KEY = f"signup-{EMAIL}"
"""An integration's idempotency key that quotes the address, as many do: erasure replaces it by its hash."""


async def _counts(hub: Hub) -> tuple[int, int, int]:
    """Contacts, identities and inbox rows."""
    async with hub.session() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(Contact)) or 0),
            int(await session.scalar(select(func.count()).select_from(ContactIdentity)) or 0),
            int(await session.scalar(select(func.count()).select_from(InboundEvent)) or 0),
        )


async def _found_by_email(hub: Hub) -> list[object]:
    page = await ok(hub, "GET", "/api/contacts", params={"email": EMAIL})
    items: list[object] = page["items"]
    return items


async def test_a_retried_api_lead_after_erasure_is_a_duplicate_and_writes_nothing(hub: Hub) -> None:
    body = {"email": EMAIL, "phone": PHONE, "name": NAME, "external_id": API_KEY}
    first = await ok(hub, "POST", "/api/contacts", 201, json=body)
    await ok(hub, "POST", f"/api/contacts/{first['contact_id']}/erase", json={"confirm": True})
    before = await _counts(hub)

    retried = await ok(hub, "POST", "/api/contacts", 200, json=body)

    assert (retried["duplicate"], retried["contact_created"]) == (True, False)
    assert (retried["contact_id"], retried["event_id"]) == (first["contact_id"], first["event_id"])
    assert await _counts(hub) == before
    assert await _found_by_email(hub) == []
    # A new post (its own key) is a new lead, as after any erasure: only the replay is recognised.
    again = await ok(hub, "POST", "/api/contacts", 201, json={**body, "external_id": "signup-2"})
    assert again["contact_id"] != first["contact_id"]


@pytest.fixture(params=["inline", "deferred"])
async def form_hub(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Hub]:
    """The app in each ingest mode, with a website form source."""
    async for running in start_hub(make_settings(database_url, ingest_mode=request.param)):
        await running.create_source(slug="website", name="Website")
        yield running


async def _post_form(hub: Hub) -> None:
    response = await hub.client.post(
        "/webhooks/forms/website",
        json={"email": EMAIL, "phone": PHONE, "name": NAME},
        headers={"Idempotency-Key": API_KEY},
    )
    assert response.status_code in (200, 201, 202), response.text
    if hub.settings.ingest_mode == "deferred":
        await apply_accepted_events(hub.runtime.jobs)


async def test_a_form_resent_after_erasure_brings_nobody_back_inline_or_deferred(form_hub: Hub) -> None:
    hub = form_hub
    await _post_form(hub)
    async with hub.session() as session:
        contact_id = await session.scalar(select(ContactIdentity.contact_id).where(ContactIdentity.value == EMAIL))
    await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})
    before = await _counts(hub)

    await _post_form(hub)

    assert await _counts(hub) == before
    assert await _found_by_email(hub) == []
    async with hub.session() as session:
        keys = list(await session.scalars(select(InboundEvent.external_id)))
    assert len(keys) == 1 and keys[0].startswith("erased:")


async def test_the_inbox_knows_an_event_by_its_erased_key(hub: Hub) -> None:
    """Every inbox path (forms, API leads, spam, Twilio callbacks) records through here."""
    async with hub.session() as session:
        kept = InboundEvent(
            source="twilio", external_id=erased_key("status:CA1:3:completed"), kind="call_status", status="processed"
        )
        session.add(kept)
        await session.flush()

        replay = await inbox.record(
            session,
            source="twilio",
            external_id="status:CA1:3:completed",
            kind="call_status",
            status=inbox.PROCESSING,
            payload={"CallStatus": "completed"},
        )
        elsewhere = await inbox.record(
            session,
            source="website",
            external_id="status:CA1:3:completed",
            kind="form_submission",
            status=inbox.PROCESSING,
            payload={},
        )
        raw_again = await inbox.record(
            session, source="website", external_id="status:CA1:3:completed", kind="x", status="y", payload={}
        )

    assert (replay.duplicate, replay.event_id) == (True, kept.id)
    assert elsewhere.duplicate is False  # the erased key is one source's, like the raw key
    assert (raw_again.duplicate, raw_again.event_id) == (True, elsewhere.event_id)
