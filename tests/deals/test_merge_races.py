"""A merge and a deal write at the same moment (PostgreSQL): nothing of the deal stays on the absorbed contact.

- A deal opened while its contact is being merged waits for the merge and is refused with the survivor's id
  (it was written to the absorbed contact, where no list shows it).
- A deal move committed while a merge waits for the deal's row lock: its timeline entry moves with the deal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hub import clock
from hub.contacts import service as contacts
from hub.db import session_scope
from hub.deals import repository as deals_repo
from hub.deals import service as deals
from hub.deals.models import Deal
from hub.deals.schemas import DealPatch
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock, truncate_all
from tests.deals.test_deals_api import RULES, START, new_contact, ok
from tests.pg_waits import backend_pid, until_a_backend_waits


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(START)


@pytest.fixture
async def pg_deals_hub(pg_database: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    await truncate_all(pg_database)
    async for running in start_hub(make_settings(pg_database, rules_file=RULES, default_currency="EUR")):
        yield running


async def test_a_deal_opened_during_a_merge_of_its_contact_waits_and_is_sent_to_the_survivor(
    pg_deals_hub: Hub,
) -> None:
    hub = pg_deals_hub
    keep, gone = await new_contact(hub, name="Keep"), await new_contact(hub, name="Gone")
    async with hub.runtime.sessions() as merging:
        await contacts.merge_contacts(merging, keep, gone, reason="the same person")  # not committed yet
        pid = await backend_pid(merging)
        opening = asyncio.ensure_future(
            hub.client.post("/api/deals", headers=hub.auth(), json={"contact_id": gone, "title": "Race"})
        )
        async with hub.session() as probe:
            await until_a_backend_waits(probe, blocked_by=pid, what="the merge", or_done=opening)
        await merging.commit()
    answer = await opening
    assert answer.status_code == 422, answer.text
    assert f"merged into contact {keep}" in answer.json()["message"]
    async with hub.session() as session:
        assert (await session.scalars(select(Deal))).all() == []


async def test_a_deal_move_committed_during_a_merge_stays_with_the_deal_on_the_survivors_timeline(
    pg_deals_hub: Hub,
) -> None:
    hub = pg_deals_hub
    keep, gone = await new_contact(hub, name="Keep"), await new_contact(hub, name="Gone")
    made = await ok(hub, "POST", "/api/deals", status=201, json={"contact_id": gone, "title": "Race"})
    async with session_scope(hub.runtime.sessions) as session:  # PATCH /api/deals/{id}, not committed yet
        deal = await deals_repo.get(session, made["id"], for_update=True)
        assert deal is not None
        policy, actor = hub.runtime.rules.current, deals.Actor("key:1")
        await deals.update_deal(session, deal, DealPatch(stage="qualified"), policy, actor=actor, now=clock.now())
        pid = await backend_pid(session)
        merge: asyncio.Future[Any] = asyncio.ensure_future(
            hub.client.post(f"/api/contacts/{keep}/merge", headers=hub.auth(), json={"other_contact_id": gone})
        )
        async with hub.session() as probe:
            await until_a_backend_waits(probe, blocked_by=pid, what="the deal's row", or_done=merge)
    answer = await merge  # the move committed at the end of its session, then the merge went on
    assert answer.status_code == 200, answer.text
    async with hub.session() as session:
        moved = await session.get(Deal, made["id"])
        assert moved is not None and moved.contact_id == keep
        rows = await session.execute(
            select(TimelineEntry.contact_id, TimelineEntry.data["event"].as_string()).where(
                TimelineEntry.kind == "deal"
            )
        )
        assert sorted(rows.all(), key=lambda r: r[1]) == [(keep, "created"), (keep, "stage_changed")]
