"""A merge joins two leads: afterwards one assignment is open and each rep's open-lead count is true."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Hub, make_settings, start_hub

RULES = Path(__file__).parent.parent / "fixtures" / "rules" / "merge_routing.yaml"


@pytest.fixture
async def routed(database_url: str) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, rules_file=RULES)):
        yield running


async def lead(hub: Hub, **body: str) -> int:
    response = await hub.client.post("/api/contacts", json=body, headers=hub.auth())
    assert response.status_code == 201, response.text
    return int(response.json()["contact_id"])


async def open_leads(hub: Hub, rep_id: int) -> int:
    return int((await hub.client.get(f"/api/reps/{rep_id}", headers=hub.auth())).json()["open_leads"])


async def assignments(hub: Hub, contact_id: int) -> list[dict[str, object]]:
    response = await hub.client.get(f"/api/contacts/{contact_id}/assignments", headers=hub.auth())
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_merging_two_leads_of_two_reps_leaves_one_owner_and_true_counts(routed: Hub) -> None:
    rita, otto = await routed.create_rep("Rita"), await routed.create_rep("Otto")
    keep, gone = await lead(routed, email="keep@example.com"), await lead(routed, phone="+14155550111")
    owners = {a["rep_id"] for c in (keep, gone) for a in await assignments(routed, c)}
    assert owners == {rita, otto}
    assert [await open_leads(routed, r) for r in (rita, otto)] == [1, 1]

    merged = await routed.client.post(
        f"/api/contacts/{keep}/merge", json={"other_contact_id": gone}, headers=routed.auth()
    )
    assert merged.status_code == 200, merged.text

    history = await assignments(routed, keep)
    assert [a["ended_at"] is None for a in history] == [True]
    survivor_owner = merged.json()["owner_rep_id"]
    assert history[0]["rep_id"] == survivor_owner
    other = otto if survivor_owner == rita else rita
    assert await open_leads(routed, survivor_owner) == 1
    assert await open_leads(routed, other) == 0


async def test_a_lead_merged_into_an_unowned_contact_keeps_its_assignment(routed: Hub) -> None:
    keep = await lead(routed, email="keep@example.com")  # no reps yet: queued, nobody owns it
    rita = await routed.create_rep("Rita")
    gone = await lead(routed, phone="+14155550111")
    merged = await routed.client.post(
        f"/api/contacts/{keep}/merge", json={"other_contact_id": gone}, headers=routed.auth()
    )
    assert merged.json()["owner_rep_id"] == rita
    [moved] = await assignments(routed, keep)
    assert (moved["rep_id"], moved["ended_at"]) == (rita, None)
    assert await open_leads(routed, rita) == 1
    queue = (await routed.client.get("/api/routing/queue", headers=routed.auth())).json()
    assert queue == []
