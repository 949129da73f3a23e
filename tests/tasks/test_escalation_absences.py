"""The escalation ladder passes over a manager or head of sales who is absent when their rung comes, and only then:
an absence over by then, or a manager merely outside working hours, changes nothing. Reps who have left (inactive)
are never told: a rep's own manager who left gives way to the team's, and a rep who left is not reminded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from hub import clock
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.notify.delivery import push_due_notifications
from hub.reps.models import Rep
from hub.tasks.models import Task
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.tasks.test_tasks_api import call, contact, notifications, run_due, task_hub

DUE = "2026-11-23T16:00:00Z"
"""A Monday, 17:00 in Berlin: overdue and rung 1 at 16:15 UTC, rung 2 at 17:15 (HUB_TASK_ESCALATION_MINUTES=0,60)."""
HOLIDAY = [{"start": "2026-11-20", "end": "2026-11-27"}]
"""Whole days in the rep's zone, the end inclusive: back at midnight starting Saturday 28 November."""


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))


@pytest.fixture
async def tasks(sqlite_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async with task_hub(sqlite_url) as hub:
        yield hub


async def sales_team(hub: Hub, *, mia: dict[str, Any], hal: dict[str, Any]) -> tuple[int, int, int]:
    """Ana, her manager Mia and Hal the head of sales, Mia and Hal as given; their ids."""
    ana = await hub.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
    manager = await hub.create_rep("Mia", email="mia@example.com", **mia)
    head = await hub.create_rep("Hal", email="head@example.com", **hal)
    team = {"name": "Sales", "manager_rep_id": manager, "member_ids": [ana]}
    await call(hub, "POST", "/api/teams", status=201, json=team)
    return ana, manager, head


async def overdue_callback(hub: Hub, owner: int, due_at: str = DUE, name: str = "Greta") -> dict[str, Any]:
    """A callback for a new contact of ``owner``'s."""
    body = {"kind": "callback", "contact_id": await contact(hub, owner, name=name), "due_at": due_at}
    created: dict[str, Any] = await call(hub, "POST", "/api/tasks", status=201, json=body)
    return created


async def run_at(hub: Hub, frozen: FrozenClock, hour: int, minute: int) -> None:
    frozen.at = datetime(2026, 11, 23, hour, minute, tzinfo=UTC)
    await run_due(hub)


async def escalations_told(hub: Hub) -> list[tuple[int, str]]:
    """Who was told of an escalation, with the notification's dedupe key."""
    return [(n.rep_id, n.dedupe_key) for n in await notifications(hub) if n.kind == "task_escalated"]


async def timeline_reasons(hub: Hub, contact_id: int) -> list[tuple[int, int | None, str | None]]:
    """Each ``task_escalated`` timeline entry's level, whom it told and why."""
    page = await call(hub, "GET", f"/api/contacts/{contact_id}/timeline", params={"limit": 200})
    entries = [e["data"] for e in reversed(page["items"]) if e["kind"] == "task_escalated"]
    return [(e["level"], e.get("to_rep_id"), e.get("reason")) for e in entries]


async def test_a_manager_on_holiday_is_passed_over_for_the_head_of_sales(
    database_url: str, frozen: FrozenClock
) -> None:
    async with task_hub(database_url) as hub:
        ana, mia, hal = await sales_team(hub, mia={"time_zone": "Europe/Berlin", "absences": HOLIDAY}, hal={})
        task = await overdue_callback(hub, ana)

        await run_at(hub, frozen, 16, 15)

        away = f"manager Mia (rep {mia}) absent until 2026-11-27T23:00:00+00:00"
        seen = await call(hub, "GET", f"/api/tasks/{task['id']}")
        assert seen["escalation_level"] == 2
        assert [(e["level"], e["rep_id"], e.get("reason")) for e in seen["escalations"]] == [(2, hal, away)]
        assert await escalations_told(hub) == [(hal, f"task_escalated:{task['id']}:{ana}:{DUE}:2")]
        assert await timeline_reasons(hub, task["contact_id"]) == [(2, hal, away)]
        async with hub.session() as session:
            assert (await session.get(Task, task["id"])).next_check_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "absence",
    [
        pytest.param({"start": "2026-11-20", "end": "9999-12-31"}, id="leave-to-the-last-day"),
        pytest.param({"start": "2026-11-20T00:00:00+00:00", "end": "9999-12-31T23:00:00-05:00"}, id="past-the-end"),
    ],
)
async def test_a_manager_on_leave_without_an_end_is_absent_until_further_notice(
    tasks: Hub, frozen: FrozenClock, absence: dict[str, str]
) -> None:
    """Leave stored before the API refused the calendar's last year runs to the calendar's end: the record says
    the manager is away until further notice, not until the calendar's last microsecond."""
    ana, mia, hal = await sales_team(tasks, mia={"time_zone": "Europe/Berlin"}, hal={})
    async with tasks.session() as session:
        manager = await session.get(Rep, mia)
        assert manager is not None
        manager.absences = [absence]  # straight to the column, as the API no longer takes it
    task = await overdue_callback(tasks, ana)

    await run_at(tasks, frozen, 16, 15)

    away = f"manager Mia (rep {mia}) absent until further notice"
    seen = await call(tasks, "GET", f"/api/tasks/{task['id']}")
    assert [(e["level"], e["rep_id"], e.get("reason")) for e in seen["escalations"]] == [(2, hal, away)]
    assert await escalations_told(tasks) == [(hal, f"task_escalated:{task['id']}:{ana}:{DUE}:2")]
    assert await timeline_reasons(tasks, task["contact_id"]) == [(2, hal, away)]


async def test_the_absence_that_counts_is_the_one_on_when_the_rung_fires(tasks: Hub, frozen: FrozenClock) -> None:
    back = {"start": "2026-11-16T08:00:00+00:00", "end": "2026-11-23T16:15:00+00:00"}
    ana, mia, hal = await sales_team(tasks, mia={"absences": [back]}, hal={})
    while_away = await overdue_callback(tasks, ana, "2026-11-23T15:45:00Z", name="Greta")
    once_back = await overdue_callback(tasks, ana, DUE, name="Hans")

    await run_at(tasks, frozen, 16, 0)  # the first is overdue while Mia is still away
    await run_at(tasks, frozen, 16, 15)  # the second when her absence has just ended

    first = await call(tasks, "GET", f"/api/tasks/{while_away['id']}")
    assert [(e["level"], e["rep_id"]) for e in first["escalations"]] == [(2, hal)]
    second = await call(tasks, "GET", f"/api/tasks/{once_back['id']}")
    assert [(e["level"], e["rep_id"], e.get("reason")) for e in second["escalations"]] == [(1, mia, None)]
    assert await escalations_told(tasks) == [
        (hal, f"task_escalated:{while_away['id']}:{ana}:2026-11-23T15:45:00Z:2"),
        (mia, f"task_escalated:{once_back['id']}:{ana}:{DUE}:1"),
    ]


async def test_a_manager_and_a_head_of_sales_both_away_end_the_ladder_with_both_reasons(
    database_url: str, frozen: FrozenClock
) -> None:
    async with task_hub(database_url) as hub:
        leave = [{"start": "2026-11-23T12:00:00+00:00", "end": "2026-11-24T08:00:00+00:00"}]
        ana, mia, hal = await sales_team(
            hub, mia={"time_zone": "Europe/Berlin", "absences": HOLIDAY}, hal={"absences": leave}
        )
        task = await overdue_callback(hub, ana)

        await run_at(hub, frozen, 16, 15)

        why = (
            f"nobody to escalate to: manager Mia (rep {mia}) absent until 2026-11-27T23:00:00+00:00; "
            f"head of sales Hal (rep {hal}) absent until 2026-11-24T08:00:00+00:00"
        )
        seen = await call(hub, "GET", f"/api/tasks/{task['id']}")
        assert (seen["status"], seen["escalation_level"]) == ("overdue", 2)
        assert [(e["level"], e["rep_id"], e.get("reason")) for e in seen["escalations"]] == [(2, None, why)]
        assert await escalations_told(hub) == []
        assert await timeline_reasons(hub, task["contact_id"]) == [(2, None, why)]
        await run_at(hub, frozen, 17, 15)  # rung 2's time: the ladder has ended, nobody is tried again
        assert len((await call(hub, "GET", f"/api/tasks/{task['id']}"))["escalations"]) == 1
        assert await escalations_told(hub) == []


async def test_a_head_of_sales_gone_on_leave_by_rung_two_is_not_told(tasks: Hub, frozen: FrozenClock) -> None:
    leave = [{"start": "2026-11-23T17:00:00+00:00", "end": "2026-11-30T08:00:00+00:00"}]
    ana, mia, hal = await sales_team(tasks, mia={}, hal={"absences": leave})
    task = await overdue_callback(tasks, ana)

    await run_at(tasks, frozen, 16, 15)  # Hal is still in: Mia is told as usual
    await run_at(tasks, frozen, 17, 15)

    why = f"nobody to escalate to: head of sales Hal (rep {hal}) absent until 2026-11-30T08:00:00+00:00"
    seen = await call(tasks, "GET", f"/api/tasks/{task['id']}")
    assert [(e["level"], e["rep_id"], e.get("reason")) for e in seen["escalations"]] == [(1, mia, None), (2, None, why)]
    assert await escalations_told(tasks) == [(mia, f"task_escalated:{task['id']}:{ana}:{DUE}:1")]


async def test_a_manager_off_for_the_evening_is_still_told_and_only_one_on_holiday_is_passed_over(
    tasks: Hub, frozen: FrozenClock
) -> None:
    office = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    ana, mia, hal = await sales_team(tasks, mia={"time_zone": "Europe/Berlin", "working_hours": office}, hal={})
    max_ = await tasks.create_rep("Max", email="max@example.com", working_hours=office, absences=HOLIDAY)
    ben = await tasks.create_rep("Ben", email="ben@example.com", manager_id=max_)
    evening = "2026-11-23T19:00:00Z"  # 20:00 in Berlin: Mia has gone home, Max is on holiday
    anas = await overdue_callback(tasks, ana, evening, name="Greta")
    bens = await overdue_callback(tasks, ben, evening, name="Hans")

    await run_at(tasks, frozen, 19, 15)

    assert await escalations_told(tasks) == [
        (mia, f"task_escalated:{anas['id']}:{ana}:{evening}:1"),
        (hal, f"task_escalated:{bens['id']}:{ben}:{evening}:2"),
    ]
    held = await call(tasks, "GET", f"/api/tasks/{bens['id']}")
    assert held["escalations"][0]["reason"] == f"manager Max (rep {max_}) absent until 2026-11-28T00:00:00+00:00"


async def test_a_rep_whose_own_manager_left_escalates_to_the_team_manager(
    database_url: str, frozen: FrozenClock
) -> None:
    """Rung 1 is the rep's manager: their own, else their team's. Max, Ana's own manager, has left; Mia still
    manages Ana's team, so the overdue callback reaches Mia rather than skipping to the head of sales."""
    async with task_hub(database_url) as hub:
        max_ = await hub.create_rep("Max", email="max@example.com")
        ana, mia, _ = await sales_team(hub, mia={}, hal={})
        await call(hub, "PATCH", f"/api/reps/{ana}", json={"manager_id": max_})
        await call(hub, "PATCH", f"/api/reps/{max_}", json={"status": "inactive"})  # Max leaves the company
        task = await overdue_callback(hub, ana)

        await run_at(hub, frozen, 16, 15)  # overdue, and rung 1 at once

        seen = await call(hub, "GET", f"/api/tasks/{task['id']}")
        assert [(e["level"], e["rep_id"]) for e in seen["escalations"]] == [(1, mia)]
        assert await escalations_told(hub) == [(mia, f"task_escalated:{task['id']}:{ana}:{DUE}:1")]


async def test_a_rep_who_has_left_is_not_reminded_and_their_manager_is_told_in_time(
    database_url: str, frozen: FrozenClock
) -> None:
    """Ana leaves with a promised callback still open. Reminded, she would not read it, and nobody present would
    hear of the promise until it was broken: the reminder goes to her manager instead (by email, Mia's channel),
    and the overdue notice to nobody but the ladder."""
    async with task_hub(database_url) as hub:
        ana, mia, _ = await sales_team(hub, mia={}, hal={})
        task = await overdue_callback(hub, ana)
        await call(hub, "PATCH", f"/api/reps/{ana}", json={"status": "inactive"})  # Ana leaves the company

        await run_at(hub, frozen, 15, 50)  # the reminder's time
        async with hub.session() as session:
            links = LinkMaker(hub.settings.public_url, "k")
            await push_due_notifications(session, settings=hub.settings, links=links, now=clock.now(), limit=9)
            mails = [m.recipient for m in (await session.scalars(select(EmailMessage))).all()]
        [reminder] = await notifications(hub)
        assert (reminder.rep_id, reminder.kind, mails) == (mia, "task_due", ["mia@example.com"])
        assert reminder.message == f"Callback #{task['id']} for Ana, who has left, is due at 2026-11-23 16:00 UTC"

        await run_at(hub, frozen, 16, 15)  # overdue, and rung 1 at once
        assert [(n.rep_id, n.kind) for n in await notifications(hub)] == [(mia, "task_due"), (mia, "task_escalated")]
