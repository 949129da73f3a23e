"""Tasks over the API with a controlled clock: local due times, calling hours, double booking, reminders,
the escalation ladder, acknowledgement, automatic callbacks from Twilio calls, and the rep's call queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from hub import clock
from hub.contacts.models import Contact
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.sender import send_due
from hub.notify.delivery import push_due_notifications
from hub.notify.models import Notification
from hub.outbound.models import WebhookDelivery
from hub.routing.models import Assignment
from hub.tasks.due import process_due_tasks
from hub.tasks.models import Task
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock
from tests.webhooks.test_twilio_voice_http import CALLER, REP_PHONE, TWILIO, child_leg, form, post, twiml

RULES = Path(__file__).parent / "head_of_sales.yaml"
MONDAY = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
"""16:00 in Berlin, 10:00 in New York."""
DUE_AT = "2026-11-23T16:00:00Z"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(MONDAY)


@asynccontextmanager
async def task_hub(database_url: str, **overrides: Any) -> AsyncIterator[Hub]:
    async with asynccontextmanager(start_hub)(make_settings(database_url, rules_file=RULES, **overrides)) as hub:
        yield hub


@pytest.fixture
async def tasks(sqlite_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async with task_hub(sqlite_url) as hub:
        yield hub


async def call(hub: Hub, method: str, path: str, key: str | None = None, status: int = 200, **kw: Any) -> Any:
    response = await hub.client.request(method, path, headers=hub.auth(key), **kw)
    assert response.status_code == status, response.text
    return response.json()


async def contact(hub: Hub, owner: int | None, *, name: str = "Greta", **fields: Any) -> int:
    created = await call(
        hub, "POST", "/api/contacts", status=201, json={"name": name, "email": f"{name.lower()}@x.example", **fields}
    )
    contact_id: int = created["contact_id"]
    if owner is not None:
        await call(hub, "PATCH", f"/api/contacts/{contact_id}", json={"owner_rep_id": owner})
    return contact_id


async def run_due(hub: Hub) -> int:
    async with hub.session() as session:
        return await process_due_tasks(
            session,
            settings=hub.settings,
            links=LinkMaker(hub.settings.public_url, "k"),
            policy=hub.runtime.rules.current,
            now=clock.now(),
            limit=100,
        )


async def notifications(hub: Hub) -> list[Notification]:
    async with hub.session() as session:
        found = await session.scalars(select(Notification).order_by(Notification.id))
        return [n for n in found if n.kind.startswith("task_")]  # not the "lead assigned" ones


async def timeline_kinds(hub: Hub, contact_id: int) -> list[str]:
    page = await call(hub, "GET", f"/api/contacts/{contact_id}/timeline", params={"limit": 200})
    return [e["kind"] for e in reversed(page["items"]) if e["kind"].startswith("task_")]


async def test_call_me_back_tomorrow_at_10_in_the_contacts_zone_placed_and_reminded(
    database_url: str, frozen: FrozenClock
) -> None:
    async with task_hub(database_url) as hub:
        ned = await hub.create_rep("Ned", email="ned@example.com", time_zone="America/New_York")
        ned_key = await hub.create_key("rep", ned)
        greta = await contact(hub, ned, name="Greta", time_zone="Europe/Berlin")
        hans = await contact(hub, ned, name="Hans", time_zone="Europe/Berlin")

        # "Call me back tomorrow at 10": Greta's 10:00, whatever Ned's own zone says.
        first = await call(
            hub,
            "POST",
            "/api/tasks",
            ned_key,
            201,
            json={"kind": "callback", "contact_id": greta, "due_local": "2026-11-24T10:00", "note": "pricing"},
        )
        assert first["due_at"] == "2026-11-24T09:00:00Z"
        assert (first["due_local"], first["time_zone"]) == ("2026-11-24T10:00:00+01:00", "Europe/Berlin")
        assert (first["assignee_rep_id"], first["moved"], first["status"]) == (ned, False, "open")

        # Hans wants the same slot: Ned gets one callback per slot, so it moves and says why.
        second = await call(
            hub,
            "POST",
            "/api/tasks",
            ned_key,
            201,
            json={"kind": "callback", "contact_id": hans, "due_at": "2026-11-24T09:00:00Z"},
        )
        assert second["due_local"] == "2026-11-24T10:15:00+01:00"
        assert second["moved"] is True
        assert second["requested_local"] == "2026-11-24T10:00:00+01:00"
        assert second["moved_reason"] == "10:00 was taken; moved to 10:15"

        # 22:00 is Greta's night: the callback lands at the next morning's first slot.
        night = await call(
            hub,
            "POST",
            "/api/tasks",
            ned_key,
            201,
            json={"kind": "callback", "contact_id": greta, "due_local": "2026-11-24T22:00"},
        )
        assert night["due_local"] == "2026-11-25T09:00:00+01:00"
        assert night["moved_reason"].startswith("22:00 is outside calling hours (09:00-20:00 Europe/Berlin)")

        # A follow-up keeps the time asked for, night or not.
        follow = await call(
            hub,
            "POST",
            "/api/tasks",
            ned_key,
            201,
            json={"kind": "follow_up", "contact_id": greta, "due_local": "2026-11-24T22:00"},
        )
        assert (follow["due_at"], follow["moved"]) == ("2026-11-24T21:00:00Z", False)

        # Ten minutes before 10:00 Berlin time the worker reminds Ned, once, and queues the push.
        frozen.at = datetime(2026, 11, 24, 8, 49, tzinfo=UTC)
        assert await run_due(hub) == 0
        frozen.at = datetime(2026, 11, 24, 8, 50, tzinfo=UTC)
        assert await run_due(hub) == 1
        assert await run_due(hub) == 0
        [reminder] = await notifications(hub)
        assert (reminder.rep_id, reminder.kind) == (ned, "task_due")
        assert reminder.dedupe_key == f"task_due:{first['id']}:{ned}:2026-11-24T09:00:00Z"
        assert reminder.deliver_at == frozen.at
        assert await timeline_kinds(hub, greta) == ["task_created", "task_created", "task_created", "task_due"]


async def test_overdue_escalates_to_the_manager_then_the_head_of_sales(tasks: Hub, frozen: FrozenClock) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
    mia = await tasks.create_rep("Mia", email="mia@example.com")
    hal = await tasks.create_rep("Hal", email="head@example.com")
    await call(
        tasks, "POST", "/api/teams", status=201, json={"name": "Sales", "manager_rep_id": mia, "member_ids": [ana]}
    )
    greta = await contact(tasks, ana, time_zone="Europe/Berlin")
    task = await call(
        tasks,
        "POST",
        "/api/tasks",
        status=201,
        json={"kind": "callback", "contact_id": greta, "due_at": "2026-11-23T16:00:00Z", "priority": "high"},
    )

    frozen.at = datetime(2026, 11, 23, 16, 14, tzinfo=UTC)
    await run_due(tasks)  # reminded, not yet overdue (15 minutes of grace)
    assert [(n.rep_id, n.kind) for n in await notifications(tasks)] == [(ana, "task_due")]

    frozen.at = datetime(2026, 11, 23, 16, 15, tzinfo=UTC)
    await run_due(tasks)  # overdue, and rung 1 at once (HUB_TASK_ESCALATION_MINUTES=0,60)
    seen = await call(tasks, "GET", f"/api/tasks/{task['id']}")
    assert (seen["status"], seen["escalation_level"]) == ("overdue", 1)
    assert [(n.rep_id, n.kind) for n in await notifications(tasks)][1:] == [
        (ana, "task_overdue"),
        (mia, "task_escalated"),
    ]

    frozen.at = datetime(2026, 11, 23, 17, 14, tzinfo=UTC)
    assert await run_due(tasks) == 0
    frozen.at = datetime(2026, 11, 23, 17, 15, tzinfo=UTC)
    assert await run_due(tasks) == 1
    seen = await call(tasks, "GET", f"/api/tasks/{task['id']}")
    assert seen["escalation_level"] == 2
    assert [(e["level"], e["rep_id"]) for e in seen["escalations"]] == [(1, mia), (2, hal)]
    assert [(n.rep_id, n.kind) for n in await notifications(tasks)][-1] == (hal, "task_escalated")
    assert all(n.deliver_at is not None for n in await notifications(tasks))
    assert await timeline_kinds(tasks, greta) == [
        "task_created",
        "task_due",
        "task_overdue",
        "task_escalated",
        "task_escalated",
    ]
    async with tasks.session() as session:
        assert (await session.get(Task, task["id"])).next_check_at is None  # type: ignore[union-attr]

    frozen.advance(86_400)
    assert await run_due(tasks) == 0


async def test_a_new_due_time_or_assignee_runs_the_ladder_again_and_tells_everyone_once(
    database_url: str, frozen: FrozenClock
) -> None:
    async with task_hub(database_url) as hub:
        ana = await hub.create_rep("Ana", email="ana@example.com")
        ben = await hub.create_rep("Ben", email="ben@example.com")
        mia = await hub.create_rep("Mia", email="mia@example.com")
        hal = await hub.create_rep("Hal", email="head@example.com")
        team = {"name": "Sales", "manager_rep_id": mia, "member_ids": [ana, ben]}
        await call(hub, "POST", "/api/teams", status=201, json=team)
        hook = {"url": "https://crm.example.com/hook", "event_types": ["task.due", "task.overdue"]}
        await call(hub, "POST", "/api/webhook-endpoints", status=201, json=hook)
        greta = await contact(hub, ana)
        body = {"kind": "custom", "contact_id": greta, "due_at": "2026-11-23T16:00:00Z"}
        task = await call(hub, "POST", "/api/tasks", status=201, json=body)
        told: list[tuple[int, str]] = []

        async def run_at(day: int, hour: int, minute: int) -> list[tuple[int, str]]:
            """Run the worker then; what it told whom."""
            frozen.at = datetime(2026, 11, day, hour, minute, tzinfo=UTC)
            await run_due(hub)
            now_told = [(n.rep_id, n.kind) for n in await notifications(hub)]
            new, told[:] = now_told[len(told) :], now_told
            return new

        assert await run_at(23, 15, 55) == [(ana, "task_due")]
        # The same round again (as if its step had not been recorded): nobody is told twice.
        async with hub.session() as session:
            again = await session.get(Task, task["id"])
            assert again is not None
            again.reminded_at, again.next_check_at = None, frozen.at
        assert await run_at(23, 15, 55) == []
        assert await run_at(23, 16, 15) == [(ana, "task_overdue"), (mia, "task_escalated")]
        assert await run_at(23, 17, 15) == [(hal, "task_escalated")]

        # Ana promises it for tomorrow: the whole ladder again, Mia and Hal included.
        await call(hub, "PATCH", f"/api/tasks/{task['id']}", json={"due_at": "2026-11-24T16:00:00Z"})
        assert await run_at(24, 15, 55) == [(ana, "task_due")]
        assert (await notifications(hub))[-1].dedupe_key == f"task_due:{task['id']}:{ana}:2026-11-24T16:00:00Z#1"
        assert await run_at(24, 16, 15) == [(ana, "task_overdue"), (mia, "task_escalated")]
        assert await run_at(24, 17, 15) == [(hal, "task_escalated")]

        # Given to Ben when it is overdue already: no reminder (past its grace period), the rest is his.
        await call(hub, "PATCH", f"/api/tasks/{task['id']}", json={"assignee_rep_id": ben})
        assert await run_at(24, 17, 16) == [(ben, "task_overdue"), (mia, "task_escalated")]
        assert await run_at(24, 18, 16) == [(hal, "task_escalated")]

        # And back to Ana, due as in her round before: the same assignee and due time, yet a new round.
        await call(hub, "PATCH", f"/api/tasks/{task['id']}", json={"assignee_rep_id": ana})
        assert await run_at(24, 18, 17) == [(ana, "task_overdue"), (mia, "task_escalated")]
        assert await run_at(24, 19, 17) == [(hal, "task_escalated")]

        seen = await call(hub, "GET", f"/api/tasks/{task['id']}")
        assert [(e["level"], e["rep_id"]) for e in seen["escalations"]] == [(1, mia), (2, hal)] * 4
        async with hub.session() as session:
            events = (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
        assert [(e.event_type, e.payload["data"]["rep_id"]) for e in events] == [
            ("task.due", ana),
            ("task.overdue", ana),
            ("task.due", ana),
            ("task.overdue", ana),
            ("task.overdue", ben),
            ("task.overdue", ana),
        ]


async def test_a_manager_who_is_also_the_head_of_sales_is_told_once_per_round(tasks: Hub, frozen: FrozenClock) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com")
    mia = await tasks.create_rep("Mia", email="head@example.com")
    team = {"name": "Sales", "manager_rep_id": mia, "member_ids": [ana]}
    await call(tasks, "POST", "/api/teams", status=201, json=team)
    body = {"kind": "custom", "contact_id": await contact(tasks, ana), "due_at": "2026-11-23T16:00:00Z"}
    task = await call(tasks, "POST", "/api/tasks", status=201, json=body)

    async def ladder(day: int) -> None:
        for hour in (16, 17, 18):  # overdue and rung 1, rung 2, nothing more
            frozen.at = datetime(2026, 11, day, hour, 15, tzinfo=UTC)
            await run_due(tasks)

    await ladder(23)
    await call(tasks, "PATCH", f"/api/tasks/{task['id']}", json={"due_at": "2026-11-24T16:00:00Z"})
    await ladder(24)
    assert [(n.rep_id, n.kind) for n in await notifications(tasks) if n.kind == "task_escalated"] == [
        (mia, "task_escalated")
    ] * 2
    seen = await call(tasks, "GET", f"/api/tasks/{task['id']}")
    assert [(e["level"], e["rep_id"]) for e in seen["escalations"]] == [(1, mia), (2, mia)] * 2


async def test_acknowledging_stops_the_ladder_and_done_stops_everything(tasks: Hub, frozen: FrozenClock) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com")
    mia = await tasks.create_rep("Mia", email="mia@example.com")
    await tasks.create_rep("Hal", email="head@example.com")
    await call(
        tasks, "POST", "/api/teams", status=201, json={"name": "Sales", "manager_rep_id": mia, "member_ids": [ana]}
    )
    ana_key, mia_key = await tasks.create_key("rep", ana), await tasks.create_key("manager", mia)
    other = await tasks.create_rep("Olga", email="olga@example.com")
    olga_key = await tasks.create_key("rep", other)
    greta = await contact(tasks, ana)
    due = {"kind": "custom", "contact_id": greta, "due_at": "2026-11-23T16:00:00Z", "title": "send the contract"}
    task = await call(tasks, "POST", "/api/tasks", ana_key, 201, json=due)
    later = await call(tasks, "POST", "/api/tasks", ana_key, 201, json={**due, "title": "second"})

    frozen.at = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    await run_due(tasks)
    assert (await call(tasks, "GET", f"/api/tasks/{task['id']}"))["escalation_level"] == 1

    # Olga is not Ana's manager: she does not even see the task.
    await call(tasks, "POST", f"/api/tasks/{task['id']}/acknowledge", olga_key, 404)
    acked = await call(tasks, "POST", f"/api/tasks/{task['id']}/acknowledge", mia_key)
    assert acked["acknowledged_by"] == f"rep:{mia}"
    await call(tasks, "POST", f"/api/tasks/{later['id']}/done", ana_key)
    await call(tasks, "POST", f"/api/tasks/{later['id']}/done", ana_key, 409)

    frozen.advance(3 * 3600)
    assert await run_due(tasks) == 0
    seen = await call(tasks, "GET", f"/api/tasks/{task['id']}", ana_key)
    assert (seen["status"], seen["escalation_level"]) == ("overdue", 1)
    done = await call(tasks, "GET", f"/api/tasks/{later['id']}", ana_key)
    assert (done["status"], done["done_by"]) == ("done", f"rep:{ana}")
    assert not any(n.rep_id != mia and n.kind == "task_escalated" for n in await notifications(tasks))

    # Ana's list: overdue first; Olga may not read it.
    page = await call(tasks, "GET", "/api/tasks", ana_key, params={"status": ["open", "overdue"]})
    assert [t["id"] for t in page["items"]] == [task["id"]]
    await call(tasks, "GET", "/api/tasks", olga_key, 403, params={"assignee": ana})


async def test_bad_input_is_refused_naming_the_field(tasks: Hub) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com")
    ben = await tasks.create_rep("Ben", email="ben@example.com")
    ana_key = await tasks.create_key("rep", ana)
    greta = await contact(tasks, ana)
    cases = [
        ({"kind": "callback", "contact_id": greta}, 422, "due_at"),
        ({"kind": "callback", "contact_id": greta, "due_at": "2026-11-24T10:00"}, 422, "due_at"),
        ({"kind": "callback", "contact_id": greta, "due_local": "2026-11-24T10:00+01:00"}, 422, "due_local"),
        (
            {"kind": "callback", "contact_id": greta, "due_at": "2026-11-24T10:00Z", "due_local": "2026-11-24T10:00"},
            422,
            "due_at",
        ),
        ({"kind": "callback", "contact_id": greta, "due_local": "9999-12-31T23:59"}, 422, "due_local"),
        (
            {"kind": "callback", "contact_id": greta, "due_at": "2026-11-24T10:00Z", "assignee_rep_id": ben},
            403,
            "assignee_rep_id",
        ),
        ({"kind": "meeting", "contact_id": greta, "due_at": "2026-11-24T10:00Z"}, 422, "kind"),
        ({"kind": "custom", "due_at": "2026-11-24T10:00Z", "assignee_rep_id": 999}, 422, "assignee_rep_id"),
    ]
    for body, status, field in cases:
        key = ana_key if status == 403 else None
        response = await tasks.client.post("/api/tasks", json=body, headers=tasks.auth(key))
        assert response.status_code == status, (body, response.text)
        assert field in response.text, (body, response.text)
    async with tasks.session() as session:
        assert (await session.scalars(select(Task))).all() == []

    # A new due time places the callback again (in Greta's zone: no zone of her own, so the default UTC).
    made = await call(tasks, "POST", "/api/tasks", ana_key, 201, json={**cases[1][0], "due_at": "2026-11-24T10:00Z"})
    await call(tasks, "PATCH", f"/api/tasks/{made['id']}", ana_key, 403, json={"assignee_rep_id": ben})
    moved = await call(tasks, "PATCH", f"/api/tasks/{made['id']}", ana_key, json={"due_local": "2026-11-24T23:00"})
    assert (moved["due_at"], moved["moved"]) == ("2026-11-25T09:00:00Z", True)
    given = await call(tasks, "PATCH", f"/api/tasks/{made['id']}", json={"assignee_rep_id": ben, "priority": "low"})
    assert (given["assignee_rep_id"], given["priority"], given["due_at"]) == (ben, "low", "2026-11-25T09:00:00Z")


async def test_a_title_is_one_line_and_a_line_break_or_control_character_is_refused_naming_it(tasks: Hub) -> None:
    """The title goes into the subject of every reminder email, which is one line."""
    ana = await tasks.create_rep("Ana", email="ana@example.com")
    made = await call(
        tasks, "POST", "/api/tasks", status=201, json={"kind": "custom", "assignee_rep_id": ana, "due_at": DUE_AT}
    )
    for title in ("Call back\nre: pricing", "Call back\r\nre: pricing", "Call back\u2028re: pricing", "Ring\x07"):
        body = {"kind": "custom", "assignee_rep_id": ana, "due_at": DUE_AT, "title": title}
        created = await tasks.client.post("/api/tasks", json=body, headers=tasks.auth())
        assert created.status_code == 422 and created.json()["field"] == "title", (title, created.text)
        patched = await tasks.client.patch(f"/api/tasks/{made['id']}", json={"title": title}, headers=tasks.auth())
        assert patched.status_code == 422 and patched.json()["field"] == "title", (title, patched.text)
    assert (await call(tasks, "GET", f"/api/tasks/{made['id']}"))["title"] is None


async def test_a_reminder_email_goes_out_for_a_task_whose_title_has_a_line_break(
    database_url: str, frozen: FrozenClock, smtp_sink: Any
) -> None:
    """A title stored before titles had to be one line (or any message with a line break) still reaches the rep:
    the line break becomes a space in the email's subject."""
    async with task_hub(database_url, **smtp_sink.settings(), send_rate_per_second=10_000) as hub:
        ana = await hub.create_rep("Ana", email="ana@example.com")  # alerted by email (the default channel)
        body = {"kind": "custom", "assignee_rep_id": ana, "due_at": DUE_AT, "title": "Call back"}
        task = await call(hub, "POST", "/api/tasks", status=201, json=body)
        async with hub.session() as session:
            await session.execute(update(Task).where(Task.id == task["id"]).values(title="Call back\nre: pricing"))
            await session.commit()

        frozen.at = datetime(2026, 11, 23, 15, 50, tzinfo=UTC)  # ten minutes before: the reminder
        assert await run_due(hub) == 1
        async with hub.session() as session:
            links = LinkMaker(hub.settings.public_url, "k")
            await push_due_notifications(session, settings=hub.settings, links=links, now=clock.now(), limit=100)
            await session.commit()
        jobs = hub.runtime.jobs
        await send_due(hub.runtime.sessions, jobs["transport"], jobs["throttle"], hub.settings, jobs["links"], limit=10)

        async with hub.session() as session:
            [mail] = (await session.scalars(select(EmailMessage))).all()
        assert [r.rcpt_tos for r in smtp_sink.received] == [["ana@example.com"]], (mail.status, mail.last_error)
        assert mail.subject == f"Task due: Task #{task['id']} (Call back re: pricing) is due at 2026-11-23 16:00 UTC"


async def test_a_callback_is_not_due_or_escalated_before_the_time_the_contact_asked_for(
    database_url: str, frozen: FrozenClock
) -> None:
    """With hour slots, "call me back at 10:45" is due at 10:45, not at the start of its slot (10:00): snapped
    back, it would be overdue at 10:15 and the manager told the promise was broken before it was due. A slot
    taken moves the callback later, never earlier."""
    async with task_hub(database_url, callback_slot_minutes=60) as hub:
        ana = await hub.create_rep("Ana", email="ana@example.com")
        mia = await hub.create_rep("Mia", email="mia@example.com")
        team = {"name": "Sales", "manager_rep_id": mia, "member_ids": [ana]}
        await call(hub, "POST", "/api/teams", status=201, json=team)
        greta = await contact(hub, ana, name="Greta", time_zone="UTC")
        hans = await contact(hub, ana, name="Hans", time_zone="UTC")
        body = {"kind": "callback", "contact_id": greta, "due_local": "2026-11-24T10:45"}
        task = await call(hub, "POST", "/api/tasks", status=201, json=body)
        assert (task["due_at"], task["moved"]) == ("2026-11-24T10:45:00Z", False)

        # Hans asks for 10:30, less than a slot from Greta's: his moves on to the first slot clear of it, not back.
        body = {"kind": "callback", "contact_id": hans, "due_local": "2026-11-24T10:30"}
        later = await call(hub, "POST", "/api/tasks", status=201, json=body)
        assert (later["due_at"], later["moved"], later["requested_due_at"]) == (
            "2026-11-24T12:00:00Z",
            True,
            "2026-11-24T10:30:00Z",
        )

        frozen.at = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)  # a quarter of an hour before the promised time
        await run_due(hub)
        assert [(n.rep_id, n.kind) for n in await notifications(hub) if n.kind != "task_due"] == []
        frozen.at = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 15 minutes after it: overdue, and Mia is told
        await run_due(hub)
        assert [(n.rep_id, n.kind) for n in await notifications(hub) if n.kind != "task_due"] == [
            (ana, "task_overdue"),
            (mia, "task_escalated"),
        ]


async def test_missed_call_makes_one_callback_and_the_reps_call_back_closes_it(
    sqlite_url: str, frozen: FrozenClock
) -> None:
    frozen.at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 11:00 in Munich, where the caller is
    async with task_hub(sqlite_url, **TWILIO) as hub:
        rita = await hub.create_rep("Rita", phone=REP_PHONE)
        lead = await contact(hub, rita, phone=CALLER)
        twiml(await post(hub, "incoming", form("incoming_call.txt")))
        await post(hub, "status", child_leg("no-answer", REP_PHONE, CallDuration="0"))
        for _ in range(2):  # Twilio retries the dial action; the voicemail then updates the marker
            twiml(await post(hub, "dial-action", form("dial_action_no_answer.txt")))
        assert (await post(hub, "recording", form("recording_voicemail.txt"))).status_code == 204

        [task] = (await call(hub, "GET", "/api/tasks", params={"contact_id": lead}))["items"]
        assert (task["kind"], task["source"], task["assignee_rep_id"], task["priority"]) == (
            "callback",
            "missed_call",
            rita,
            "high",
        )
        assert (task["due_at"], task["time_zone"]) == ("2026-11-24T10:30:00Z", "Europe/Berlin")

        # Rita calls back from her phone half an hour later and Greta picks up: the callback is done.
        frozen.advance(1800)
        stamp = frozen.at.strftime("%a, %d %b %Y %H:%M:%S +0000")
        back = form(
            "status_completed.txt",
            CallSid="CA" + "9" * 32,
            From=REP_PHONE,
            Caller=REP_PHONE,
            To=CALLER,
            Timestamp=stamp,
        )
        assert (await post(hub, "status", back)).status_code == 204
        closed = await call(hub, "GET", f"/api/tasks/{task['id']}")
        assert closed["status"] == "done"
        assert closed["done_by"].startswith("call:")
        assert await timeline_kinds(hub, lead) == ["task_created", "task_done"]


async def test_the_queue_puts_promised_callbacks_first_then_due_tasks_then_hot_leads(
    tasks: Hub, frozen: FrozenClock
) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
    ana_key = await tasks.create_key("rep", ana)
    people = {name: await contact(tasks, ana, name=name, time_zone="Europe/Berlin") for name in ("Cal", "Dora", "Eve")}

    async def task(kind: str, who: str, minutes: int, **extra: Any) -> int:
        due = (MONDAY + timedelta(minutes=minutes)).isoformat()
        body = {"kind": kind, "contact_id": people[who], "due_at": due, **extra}
        created: dict[str, Any] = await call(tasks, "POST", "/api/tasks", ana_key, 201, json=body)
        return int(created["id"])

    soon = await task("callback", "Cal", 30)
    late = await task("callback", "Dora", -45)
    urgent = await task("follow_up", "Eve", 0, priority="urgent")
    normal = await task("custom", "Eve", -10)
    await task("callback", "Eve", 180)  # later today: not on the list yet
    async with tasks.session() as session:
        for name, bucket, minutes in (("Warren", "warm", 5), ("Hattie", "hot", 20), ("Tom", "hot", 10)):
            lead = Contact(name=name, bucket=bucket, owner_rep_id=ana, time_zone="America/New_York")
            session.add(lead)
            await session.flush()
            session.add(
                Assignment(
                    contact_id=lead.id,
                    rep_id=ana,
                    how="rule",
                    reason="test",
                    actor="rule:test",
                    assigned_at=MONDAY,
                    due_at=MONDAY + timedelta(minutes=minutes),
                )
            )

    queue = await call(tasks, "GET", f"/api/reps/{ana}/queue", ana_key)

    assert [(i["type"], i.get("task_id") or i["contact_name"]) for i in queue] == [
        ("task", late),
        ("task", soon),
        ("task", urgent),
        ("task", normal),
        ("lead", "Tom"),
        ("lead", "Hattie"),
        ("lead", "Warren"),
        # Given to Ana by hand, never touched: leads with running SLAs too, of no known warmth.
        ("lead", "Cal"),
        ("lead", "Dora"),
        ("lead", "Eve"),
    ]
    assert queue[0]["reason"].startswith("promised callback overdue since 15:15")
    assert (queue[4]["bucket"], queue[4]["time_zone"]) == ("hot", "America/New_York")
    other = await tasks.create_rep("Olga", email="olga@example.com")
    await call(tasks, "GET", f"/api/reps/{ana}/queue", await tasks.create_key("rep", other), 404)


async def test_a_merge_gives_the_absorbed_contacts_tasks_to_the_survivor(tasks: Hub) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com")
    keep = await contact(tasks, ana, name="Greta")
    gone = await contact(tasks, ana, name="Gretchen")
    due = {"kind": "follow_up", "contact_id": gone, "due_at": "2026-11-24T16:00:00Z", "assignee_rep_id": ana}
    task = await call(tasks, "POST", "/api/tasks", status=201, json=due)
    await call(tasks, "POST", f"/api/contacts/{keep}/merge", json={"other_contact_id": gone})
    moved = await call(tasks, "GET", f"/api/tasks/{task['id']}")
    assert moved["contact_id"] == keep
    listed = await call(tasks, "GET", f"/api/tasks?contact_id={keep}")
    assert [t["id"] for t in listed["items"]] == [task["id"]]


async def test_a_call_the_rep_logs_by_hand_closes_their_callback(tasks: Hub, frozen: FrozenClock) -> None:
    ana = await tasks.create_rep("Ana", email="ana@example.com")
    ana_key = await tasks.create_key("rep", ana)
    greta = await contact(tasks, ana)
    body = {"kind": "callback", "contact_id": greta, "due_at": "2026-11-24T15:00:00Z"}
    callback = await call(tasks, "POST", "/api/tasks", ana_key, 201, json=body)
    note = {"type": "note", "note": "left a comment, no call"}
    await call(tasks, "POST", f"/api/contacts/{greta}/activities", ana_key, 201, json=note)
    assert (await call(tasks, "GET", f"/api/tasks/{callback['id']}"))["status"] == "open"
    frozen.advance(60)
    logged = {"type": "call", "outcome": "reached", "note": "called from the desk phone"}
    await call(tasks, "POST", f"/api/contacts/{greta}/activities", ana_key, 201, json=logged)
    done = await call(tasks, "GET", f"/api/tasks/{callback['id']}")
    assert done["status"] == "done" and done["done_by"].startswith("activity:")
