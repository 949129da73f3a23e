"""The rep's queue page: who sees which queue, what is on it, and the one-click actions swapping a row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.contacts.models import Contact
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub
from tests.ui.d1_seed import MONDAY, api, frozen_clock, new_contact, ui_hub


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_clock()


@pytest.fixture
async def sales(sqlite_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async with ui_hub(sqlite_url) as hub:
        yield hub


async def activities(hub: Hub, contact_id: int) -> list[dict[str, object]]:
    async with hub.session() as session:
        found = await session.scalars(
            select(TimelineEntry).where(TimelineEntry.contact_id == contact_id, TimelineEntry.kind == "activity")
        )
        return [e.data for e in found]


async def test_a_rep_sees_callbacks_first_then_leads_with_countdowns_and_only_their_own(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
    olga = await sales.create_rep("Olga", email="olga@example.com")
    cal = await new_contact(sales, ana, name="Cal", time_zone="America/New_York")
    await new_contact(sales, ana, name="Dora")
    await new_contact(sales, olga, name="Oscar")
    due = (MONDAY + timedelta(minutes=30)).isoformat()
    await api(sales, "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": cal, "due_at": due})

    await sales.login_as("rep", rep_id=ana)
    page = await sales.client.get("/ui/queue")

    assert page.status_code == 200
    text = page.text
    assert "My queue" in text
    assert text.index("promised callback due at") < text.index(">Dora<")  # the callback comes first
    assert 'data-deadline="2026-11-23T15:30:00+00:00"' in text  # the countdown's deadline
    assert "16:30" in text and "10:30 EST" in text  # Ana's time, and Cal's own
    assert '<option value="contacted" selected>' in text  # one click advances a new lead
    assert "Oscar" not in text  # Olga's lead
    assert (await sales.client.get(f"/ui/queue?rep={olga}")).status_code == 404


async def test_a_manager_opens_a_reps_queue_and_a_signed_out_visitor_is_sent_to_login(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    await new_contact(sales, ana, name="Dora")

    signed_out = await sales.client.get("/ui/queue")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/login?next=")

    await sales.login_as("manager")
    mine = await sales.client.get("/ui/queue")
    assert mine.status_code == 200 and "not linked to a rep" in mine.text
    theirs = await sales.client.get(f"/ui/queue?rep={ana}")
    assert theirs.status_code == 200
    assert "Ana's queue" in theirs.text and ">Dora<" in theirs.text
    rows = await sales.client.get(f"/ui/queue/rows?rep={ana}")  # what the live stream's "queue" event reloads
    assert rows.status_code == 200 and ">Dora<" in rows.text and "<html" not in rows.text


async def test_one_click_logs_the_call_and_the_row_comes_back_off_the_list(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    dora = await new_contact(sales, ana, name="Dora")
    csrf = await sales.login_as("rep", rep_id=ana)
    page = await sales.client.get("/ui/queue")
    [key] = [k for k in ("lead-1", "lead-2") if f'id="q-{k}"' in page.text]
    form = {"from": "queue", "item": key, "rep": str(ana), "type": "call", "outcome": "reached"}

    refused = await sales.client.post(f"/ui/contacts/{dora}/activity", data=form, headers={"X-CSRF-Token": "forged"})
    assert refused.status_code == 403
    bad = await sales.client.post(
        f"/ui/contacts/{dora}/activity", data={**form, "type": "fax"}, headers={"X-CSRF-Token": csrf}
    )
    assert bad.status_code == 422 and "type must be one of" in bad.text
    assert await activities(sales, dora) == []

    row = await sales.client.post(f"/ui/contacts/{dora}/activity", data=form, headers={"X-CSRF-Token": csrf})

    assert row.status_code == 200
    assert row.text.lstrip().startswith("<tr")  # just the row, for htmx to swap
    # A first touch ends the deadline: the row closes, and the page's status line (swapped out of band, so
    # it outlives the live refresh of the rows) names the contact.
    assert "Logged call: reached. It is off the list now." in row.text
    assert '<p id="queue-status" class="notice" role="status" aria-live="polite" hx-swap-oob="innerHTML">' in row.text
    assert "<strong>Dora</strong>: Logged call: reached. It is off the list now.</p>" in row.text
    [logged] = await activities(sales, dora)
    assert (logged["type"], logged["outcome"], logged["rep_id"]) == ("call", "reached", ana)
    assert ">Dora<" not in (await sales.client.get("/ui/queue")).text


async def test_a_callback_is_read_in_the_contacts_zone_and_shown_in_both(sales: Hub) -> None:
    bert = await sales.create_rep("Bert", email="bert@example.com", time_zone="Europe/Berlin")
    nora = await new_contact(sales, bert, name="Nora", time_zone="America/New_York")
    csrf = await sales.login_as("rep", rep_id=bert)

    preview = await sales.client.get(f"/ui/contacts/{nora}/callback-preview", params={"due_local": "2026-11-24T10:00"})
    assert preview.status_code == 200
    assert "Tue 24 Nov 10:00 EST for the contact (America/New_York)" in preview.text
    assert "Tue 24 Nov 16:00 CET" in preview.text and "(Europe/Berlin)" in preview.text

    form = {"from": "queue", "item": "lead-1", "rep": str(bert), "due_local": "2026-11-24T10:00", "note": "pricing"}
    row = await sales.client.post(f"/ui/contacts/{nora}/callback", data=form, headers={"X-CSRF-Token": csrf})

    assert row.status_code == 200, row.text
    said = "Callback set for Tue 24 Nov 10:00 EST their time = Tue 24 Nov 16:00 CET for the rep."
    assert f'<p class="notice">{said}</p>' in row.text  # in the row, where the rep clicked
    assert f"<strong>Nora</strong>: {said}</p>" in row.text  # and in the status line
    async with sales.session() as session:
        [task] = (await session.scalars(select(Task).where(Task.contact_id == nora))).all()
    assert (task.kind, task.assignee_rep_id, task.note) == ("callback", bert, "pricing")
    assert task.due_at == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)

    for bad, field in (("tomorrow", "due_local"), ("2026-11-24T10:00+01:00", "due_local"), ("", "due_local")):
        refused = await sales.client.post(
            f"/ui/contacts/{nora}/callback", data={**form, "due_local": bad}, headers={"X-CSRF-Token": csrf}
        )
        assert refused.status_code == 422 and field in refused.text
    async with sales.session() as session:
        assert len((await session.scalars(select(Task).where(Task.contact_id == nora))).all()) == 1


async def test_the_stage_moves_in_one_click_and_a_task_is_marked_done(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    dora = await new_contact(sales, ana, name="Dora")
    due = (MONDAY + timedelta(minutes=10)).isoformat()
    task = await api(sales, "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": dora, "due_at": due})
    csrf = await sales.login_as("rep", rep_id=ana)
    headers = {"X-CSRF-Token": csrf}

    wrong = await sales.client.post(
        f"/ui/contacts/{dora}/stage", data={"stage": "heaven", "from": "queue"}, headers=headers
    )
    assert wrong.status_code == 422 and "stage must be one of" in wrong.text
    lost = await sales.client.post(
        f"/ui/contacts/{dora}/stage", data={"stage": "lost", "from": "queue"}, headers=headers
    )
    assert lost.status_code == 422 and "loss_reason" in lost.text
    form = {"from": "queue", "item": f"task-{task['id']}", "rep": str(ana), "stage": "qualified"}
    moved = await sales.client.post(f"/ui/contacts/{dora}/stage", data=form, headers=headers)
    assert moved.status_code == 200 and "Moved to qualified." in moved.text
    async with sales.session() as session:
        assert (await session.get(Contact, dora)).stage == "qualified"  # type: ignore[union-attr]

    done = await sales.client.post(
        f"/ui/tasks/{task['id']}/done", data={"item": f"task-{task['id']}", "rep": str(ana)}, headers=headers
    )
    assert done.status_code == 200 and "<strong>Dora</strong>: Callback done. It is off the list now.</p>" in done.text
    assert (await api(sales, "GET", f"/api/tasks/{task['id']}"))["status"] == "done"
