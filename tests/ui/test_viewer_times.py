"""Times as the viewer reads them (the leads list and the timeline's tasks in the zone of the user's rep), and
the queue's one-click stage form, which must never preselect a move back to the first stage."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hub.contacts.models import Contact
from tests.conftest import FrozenClock, Hub
from tests.ui.d1_seed import MONDAY, api, frozen_clock, new_contact, ui_hub

SUNDAY_LATE = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
"""Already Monday 00:30 in Berlin."""


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_clock(SUNDAY_LATE)


@pytest.fixture
async def sales(sqlite_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async with ui_hub(sqlite_url) as hub:
        yield hub


def created_cells(page: str) -> list[str]:
    return re.findall(r'<td data-label="Created"><time datetime="[^"]+">([^<]+)</time>', page)


async def test_the_leads_list_shows_times_and_days_in_the_viewers_zone(sales: Hub, frozen: FrozenClock) -> None:
    berta = await sales.create_rep("Berta", email="berta@example.com", time_zone="Europe/Berlin")
    await new_contact(sales, None, name="Nightowl")  # Sunday 23:30 UTC, Monday 00:30 in Berlin
    frozen.advance((MONDAY - SUNDAY_LATE).total_seconds())
    await new_contact(sales, None, name="Dora")  # Monday 15:00 UTC
    monday = {"created_from": "2026-11-23", "created_to": "2026-11-23"}

    await sales.login_as("manager", rep_id=berta)
    page = await sales.client.get("/ui/leads", params=monday)

    assert page.status_code == 200
    assert sorted(created_cells(page.text)) == ["2026-11-23 00:30", "2026-11-23 16:00"]  # both on Berlin's Monday

    await sales.login_as("manager")  # another manager, with no rep of their own: the hub's default zone (UTC)
    page = await sales.client.get("/ui/leads", params=monday)
    assert created_cells(page.text) == ["2026-11-23 15:00"]  # Nightowl came on UTC's Sunday


async def test_a_task_on_the_timeline_is_due_in_the_viewers_zone(sales: Hub, frozen: FrozenClock) -> None:
    frozen.advance((MONDAY - SUNDAY_LATE).total_seconds())
    ana = await sales.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
    cal = await new_contact(sales, ana, name="Cal", time_zone="America/New_York")
    due = (MONDAY + timedelta(minutes=30)).isoformat()
    await api(sales, "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": cal, "due_at": due})

    await sales.login_as("rep", rep_id=ana)
    page = await sales.client.get(f"/ui/contacts/{cal}")

    assert page.status_code == 200
    entry = re.search(r"Task created: callback due (.*?)</p>", page.text)
    assert entry, "no task entry on the timeline"
    assert entry[1] == '<time datetime="2026-11-23T15:30:00+00:00">Mon 23 Nov 16:30 CET</time>'


async def test_the_queue_preselects_only_a_forward_stage(sales: Hub, frozen: FrozenClock) -> None:
    frozen.advance((MONDAY - SUNDAY_LATE).total_seconds())
    ana = await sales.create_rep("Ana", email="ana@example.com")
    dora = await new_contact(sales, ana, name="Dora")
    nina = await new_contact(sales, ana, name="Nina")
    due = (MONDAY + timedelta(minutes=30)).isoformat()
    await api(sales, "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": nina, "due_at": due})
    csrf = await sales.login_as("rep", rep_id=ana)
    headers = {"X-CSRF-Token": csrf}
    moved = await sales.client.post(f"/ui/contacts/{nina}/stage", data={"stage": "negotiation"}, headers=headers)
    assert moved.status_code == 303

    page = (await sales.client.get("/ui/queue")).text

    def stage_select(contact_id: int) -> str:
        found = re.search(rf'hx-post="/ui/contacts/{contact_id}/stage".*?<select[^>]*>(.*?)</select>', page, re.S)
        assert found, f"no stage form for contact {contact_id}"
        return found[1]

    # Nina is at the last open stage: nothing but the placeholder is chosen, so one click cannot send her back.
    assert re.findall(r'<option value="([^"]*)" selected>', stage_select(nina)) == [""]
    assert re.findall(r'<option value="([^"]*)" selected>', stage_select(dora)) == ["contacted"]
    assert '<select id="st-' in page and 'name="stage" required>' in page

    form = {"from": "queue", "item": "task-1", "rep": str(ana), "stage": ""}
    refused = await sales.client.post(f"/ui/contacts/{nina}/stage", data=form, headers=headers)
    assert refused.status_code == 422 and "stage is required" in refused.text
    async with sales.session() as session:
        assert (await session.get(Contact, nina)).stage == "negotiation"  # type: ignore[union-attr]
