"""What else a merge carries over: the owner's open-lead count when only one of the two leads is open, a place in
the unassigned queue, and the absorbed contact's tags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub import jobs
from tests.conftest import Hub, make_settings, start_hub
from tests.imports.helpers import import_text
from tests.routing.test_merge_routing import RULES, assignments, lead, open_leads
from tests.sequences.helpers import enrollments, make_sequence


@pytest.fixture
async def routed(database_url: str) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, rules_file=RULES)):
        yield running


async def merge(hub: Hub, survivor: int, absorbed: int) -> dict[str, Any]:
    response = await hub.client.post(
        f"/api/contacts/{survivor}/merge", json={"other_contact_id": absorbed}, headers=hub.auth()
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def lose(hub: Hub, contact_id: int) -> None:
    response = await hub.client.post(
        f"/api/contacts/{contact_id}/stage", json={"stage": "lost", "loss_reason": "price"}, headers=hub.auth()
    )
    assert response.status_code == 200, response.text


async def queued_ids(hub: Hub) -> list[int]:
    return [q["contact_id"] for q in (await hub.client.get("/api/routing/queue", headers=hub.auth())).json()]


async def retry_queue(hub: Hub) -> None:
    await jobs.retry_routing_queue(
        {"sessions": hub.runtime.sessions, "settings": hub.settings, "rules": hub.runtime.rules}
    )


async def test_a_lost_lead_merged_into_an_open_unowned_one_counts_toward_its_owners_capacity(routed: Hub) -> None:
    keep = await lead(routed, email="ada@example.com")  # no reps yet: it waits in the queue, unowned
    rita = await routed.create_rep("Rita", capacity=1)
    gone = await lead(routed, phone="+14155550111")
    assert [a["rep_id"] for a in await assignments(routed, gone)] == [rita]
    await lose(routed, gone)
    assert await open_leads(routed, rita) == 0

    merged = await merge(routed, keep, gone)

    assert (merged["owner_rep_id"], merged["stage"]) == (rita, "new")
    assert await open_leads(routed, rita) == 1
    newcomer = await lead(routed, email="bob@example.com")
    assert await assignments(routed, newcomer) == []  # Rita is full
    assert await queued_ids(routed) == [newcomer]


async def test_an_open_lead_merged_into_a_lost_unowned_one_no_longer_counts(routed: Hub) -> None:
    keep = await lead(routed, email="ada@example.com")  # no reps yet: unowned
    await lose(routed, keep)
    rita = await routed.create_rep("Rita")
    gone = await lead(routed, phone="+14155550111")
    assert await open_leads(routed, rita) == 1

    merged = await merge(routed, keep, gone)

    assert (merged["owner_rep_id"], merged["stage"]) == (rita, "lost")
    assert await open_leads(routed, rita) == 0


async def test_a_queued_lead_merged_into_an_unowned_imported_contact_keeps_its_place_in_the_queue(routed: Hub) -> None:
    await import_text(routed, "email,name\nada@example.com,Ada Lovelace\n", namespace="crm")  # an old list: unowned
    listed = await routed.client.get("/api/contacts", params={"email": "ada@example.com"}, headers=routed.auth())
    [imported] = listed.json()["items"]
    keep = int(imported["id"])
    gone = await lead(routed, phone="+14155550111", name="Ada L.")  # no reps yet: it waits in the queue
    waiting = (await routed.client.get("/api/routing/queue", headers=routed.auth())).json()
    assert [q["contact_id"] for q in waiting] == [gone]

    await merge(routed, keep, gone)

    [moved] = (await routed.client.get("/api/routing/queue", headers=routed.auth())).json()
    assert moved == {**waiting[0], "contact_id": keep}
    rita = await routed.create_rep("Rita")  # a rep comes on shift
    await retry_queue(routed)
    assert [a["rep_id"] for a in await assignments(routed, keep)] == [rita]
    assert await queued_ids(routed) == []
    assert await open_leads(routed, rita) == 1


async def test_a_queued_lead_merged_into_a_queued_one_leaves_one_place(routed: Hub) -> None:
    keep = await lead(routed, email="ada@example.com")  # no reps: both wait
    gone = await lead(routed, phone="+14155550111")

    await merge(routed, keep, gone)
    await retry_queue(routed)  # still nobody to take them

    assert await queued_ids(routed) == [keep]


async def test_merge_keeps_the_absorbed_contacts_tags_without_triggering_their_sequences(hub: Hub) -> None:
    steps = [{"key": "one", "subject": "One", "text": "First."}]
    webinar = await make_sequence(hub, name="webinar", steps=steps, triggers=[{"tag": "webinar"}])
    keep = await lead(hub, email="ada@example.com")
    gone = await lead(hub, email="ada.l@example.com")
    for contact_id, tags in ((keep, ["vip", "do-not-call"]), (gone, ["webinar", "do-not-call"])):
        tagged = await hub.client.patch(f"/api/contacts/{contact_id}", json={"tags": tags}, headers=hub.auth())
        assert tagged.status_code == 200, tagged.text
    assert [(e.sequence_id, e.contact_id) for e in await enrollments(hub)] == [(webinar, gone)]

    merged = await merge(hub, keep, gone)

    assert merged["tags"] == ["vip", "do-not-call", "webinar"]  # the survivor's first, each once
    # The person had the tag all along: the merge stops the absorbed contact's run and starts none.
    found = [(e.sequence_id, e.contact_id, e.status) for e in await enrollments(hub)]
    assert found == [(webinar, gone, "stopped")]
