"""A first and a last name at their limit make a name longer than a contact's (200 characters).

Each part is taken up to 200 characters, and "first last" was then refused by PostgreSQL: a 500 inline, and in
deferred mode a post answered 202 that the worker could never apply. The name is cut to the column's width.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from hub.accepted import apply_accepted
from hub.contacts.models import Contact
from hub.inbox.models import AcceptedEvent
from tests.conftest import Hub, make_settings, start_hub, truncate_all

FIRST, LAST = "A" * 150, "B" * 150


@pytest.fixture(params=["inline", "deferred"])
async def pg_hub_by_mode(pg_database: str, request: pytest.FixtureRequest) -> AsyncIterator[Hub]:
    await truncate_all(pg_database)
    async for running in start_hub(make_settings(pg_database, ingest_mode=request.param)):
        yield running


async def test_a_long_first_and_last_name_make_a_contact_named_to_the_limit(pg_hub_by_mode: Hub) -> None:
    hub = pg_hub_by_mode
    await hub.create_source(slug="website", name="Website")
    posted = await hub.client.post(
        "/webhooks/forms/website", json={"email": "long@example.com", "first_name": FIRST, "last_name": LAST}
    )
    assert posted.status_code == 202, posted.text
    report = await apply_accepted(hub.runtime.sessions, hub.settings, limit=100)  # deferred: the worker's turn
    assert report.failed == []
    async with hub.session() as session:
        assert (await session.scalars(select(AcceptedEvent))).all() == []
        [contact] = (await session.scalars(select(Contact))).all()
    assert contact.name == f"{FIRST} {LAST}"[:200]
