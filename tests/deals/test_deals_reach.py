"""Who sees and edits which deals, lists with filters and cursors, merges, and concurrent moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hub.deals.models import DealStageChange
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock, truncate_all
from tests.deals.test_deals_api import RULES, START, call, new_contact, ok


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(START)


@pytest.fixture
async def hub(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, rules_file=RULES)):
        yield running


async def open_deal(hub: Hub, contact_id: int, key: str | None = None, **body: Any) -> dict[str, Any]:
    deal: dict[str, Any] = await ok(
        hub, "POST", "/api/deals", key, status=201, json={"contact_id": contact_id, "title": "Deal", **body}
    )
    return deal


async def ids(hub: Hub, url: str, key: str | None = None) -> list[int]:
    page = await ok(hub, "GET", url, key)
    return [d["id"] for d in page["items"]]


async def test_role_reach(hub: Hub) -> None:
    mia = await hub.create_rep("Mia")
    ana, bob = await hub.create_rep("Ana", manager_id=mia), await hub.create_rep("Bob", manager_id=mia)
    carl = await hub.create_rep("Carl")
    ana_key, mia_key = await hub.create_key("rep", ana), await hub.create_key("manager", mia)
    ana_lead, bob_lead, carl_lead = [await new_contact(hub, owner=r) for r in (ana, bob, carl)]

    mine = await open_deal(hub, ana_lead, ana_key)
    assert mine["owner_rep_id"] == ana and mine["created_by"].startswith("key:")
    refused = await call(
        hub, "POST", "/api/deals", ana_key, json={"contact_id": ana_lead, "title": "x", "owner_rep_id": bob}
    )
    assert (refused.status_code, refused.json()["field"]) == (403, "owner_rep_id")
    hidden = await call(hub, "POST", "/api/deals", ana_key, json={"contact_id": bob_lead, "title": "x"})
    assert (hidden.status_code, hidden.json()["field"]) == (404, "contact_id")

    bobs = await open_deal(hub, bob_lead)
    carls = await open_deal(hub, carl_lead)
    assert bobs["owner_rep_id"] == bob  # the contact's owner, when the creator names none
    for method, body in (("GET", None), ("PATCH", {"stage": "contacted"})):
        response = await call(hub, method, f"/api/deals/{bobs['id']}", ana_key, json=body)
        assert (response.status_code, response.json()["field"]) == (404, "deal_id")
        stages = await call(hub, "GET", f"/api/deals/{bobs['id']}/stages", ana_key)
        assert stages.status_code == 404
    moved = await call(hub, "PATCH", f"/api/deals/{mine['id']}", ana_key, json={"owner_rep_id": bob})
    assert (moved.status_code, moved.json()["field"]) == (403, "owner_rep_id")
    assert await ids(hub, "/api/deals", ana_key) == [mine["id"]]
    forbidden = await call(hub, "GET", f"/api/deals?owner_rep_id={bob}", ana_key)
    assert forbidden.status_code == 403

    assert await ids(hub, "/api/deals", mia_key) == [bobs["id"], mine["id"]]
    assert (await call(hub, "GET", f"/api/deals/{carls['id']}", mia_key)).status_code == 404
    given = await ok(hub, "PATCH", f"/api/deals/{mine['id']}", mia_key, json={"owner_rep_id": bob})
    assert given["owner_rep_id"] == bob
    outside = await call(hub, "PATCH", f"/api/deals/{bobs['id']}", mia_key, json={"owner_rep_id": carl})
    assert (outside.status_code, outside.json()["field"]) == (403, "owner_rep_id")
    assert (await call(hub, "GET", f"/api/deals/{mine['id']}", ana_key)).status_code == 404  # no longer hers

    assert await ids(hub, "/api/deals") == [carls["id"], bobs["id"], mine["id"]]


async def test_list_filters_and_pagination(hub: Hub, frozen: FrozenClock) -> None:
    ana, bob = await hub.create_rep("Ana"), await hub.create_rep("Bob")
    lead, other = await new_contact(hub, owner=ana), await new_contact(hub, owner=bob)
    made = [await open_deal(hub, lead, title=f"D{i}") for i in range(5)]
    renewal = await open_deal(hub, other, pipeline="renewals")
    await ok(hub, "PATCH", f"/api/deals/{made[1]['id']}", json={"status": "won"})
    await ok(hub, "PATCH", f"/api/deals/{made[2]['id']}", json={"stage": "proposal"})

    seen: list[int] = []
    url = "/api/deals?limit=2"
    while True:
        page = await ok(hub, "GET", url)
        assert len(page["items"]) <= 2
        seen += [d["id"] for d in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/api/deals?limit=2&cursor={page['next_cursor']}"
    assert seen == [renewal["id"], *(d["id"] for d in reversed(made))]

    assert await ids(hub, "/api/deals?status=won") == [made[1]["id"]]
    assert await ids(hub, "/api/deals?status=won&status=open&limit=200") == seen
    assert await ids(hub, "/api/deals?stage=proposal") == [made[2]["id"]]
    assert await ids(hub, "/api/deals?pipeline=renewals") == [renewal["id"]]
    assert await ids(hub, f"/api/deals?owner_rep_id={bob}") == [renewal["id"]]
    assert await ids(hub, f"/api/deals?contact_id={lead}&status=open&limit=1") == [made[4]["id"]]
    assert await ids(hub, f"/api/contacts/{other}/deals") == [renewal["id"]]
    bad = await call(hub, "GET", "/api/deals?cursor=nonsense")
    assert (bad.status_code, bad.json()["field"]) == (400, "cursor")
    bad_status = await call(hub, "GET", "/api/deals?status=maybe")
    assert (bad_status.status_code, bad_status.json()["field"]) == (422, "status.0")


async def test_merge_moves_deals_and_their_log(hub: Hub) -> None:
    ana = await hub.create_rep("Ana")
    keep, gone = await new_contact(hub, owner=ana, name="Keep"), await new_contact(hub, owner=ana, name="Gone")
    deal = await open_deal(hub, gone)
    await ok(hub, "PATCH", f"/api/deals/{deal['id']}", json={"stage": "qualified"})
    await ok(hub, "POST", f"/api/contacts/{keep}/merge", json={"other_contact_id": gone})

    assert (await ok(hub, "GET", f"/api/deals/{deal['id']}"))["contact_id"] == keep
    async with hub.session() as session:
        rows = (await session.scalars(select(DealStageChange.contact_id))).all()
    assert rows == [keep, keep]
    redirected = await call(hub, "GET", f"/api/contacts/{gone}/deals")
    assert redirected.status_code == 308
    assert redirected.headers["location"] == f"/api/contacts/{keep}/deals"
    assert await ids(hub, redirected.headers["location"]) == [deal["id"]]
    assert await ids(hub, f"/api/deals?contact_id={gone}") == [deal["id"]]  # a merged id means its survivor
    on_absorbed = await call(hub, "POST", "/api/deals", json={"contact_id": gone, "title": "x"})
    assert on_absorbed.status_code == 422
    assert (
        on_absorbed.json()["field"] == "contact_id" and f"merged into contact {keep}" in on_absorbed.json()["message"]
    )


@pytest.fixture
async def pg_hub(pg_database: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """PostgreSQL only: SQLite serialises every writer, so a race between two moves cannot happen there."""
    await truncate_all(pg_database)
    async for running in start_hub(make_settings(pg_database, rules_file=RULES)):
        yield running


async def test_concurrent_moves_from_one_stage_log_once(pg_hub: Hub) -> None:
    hub = pg_hub
    lead = await new_contact(hub)
    for _ in range(5):
        deal = await open_deal(hub, lead)
        url = f"/api/deals/{deal['id']}"
        answers = await asyncio.gather(
            call(hub, "PATCH", url, json={"stage": "qualified"}), call(hub, "PATCH", url, json={"stage": "proposal"})
        )
        assert [a.status_code for a in answers] == [200, 200]
        log = await ok(hub, "GET", f"{url}/stages")
        # Both moves are logged, one after the other: exactly one leaves "new", and the second starts where
        # the first ended (without the row lock both would have read "new" and logged a move from it).
        assert [r["from_stage"] for r in log].count("new") == 1
        assert log[2]["from_stage"] == log[1]["to_stage"]
        final = await ok(hub, "GET", url)
        assert final["stage"] == log[-1]["to_stage"]
