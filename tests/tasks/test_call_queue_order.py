"""A rep's call list cut by ``limit`` is the head of the whole list: the order is built before the cut."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from hub.contacts.models import Contact
from hub.routing.models import Assignment
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.tasks.test_tasks_api import MONDAY, call, contact, task_hub


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(MONDAY)


async def _task(hub: Hub, kind: str, contact_id: int, rep: int, minutes: int, **extra: Any) -> int:
    body = {"kind": kind, "contact_id": contact_id, "assignee_rep_id": rep, **extra}
    body["due_at"] = (MONDAY + timedelta(minutes=minutes)).isoformat()
    created: dict[str, Any] = await call(hub, "POST", "/api/tasks", status=201, json=body)
    return int(created["id"])


async def _lead(hub: Hub, rep: int, name: str, bucket: str | None, minutes: int) -> None:
    async with hub.session() as session:
        lead = Contact(name=name, bucket=bucket, owner_rep_id=rep, time_zone="America/New_York")
        session.add(lead)
        await session.flush()
        session.add(
            Assignment(
                contact_id=lead.id,
                rep_id=rep,
                how="rule",
                reason="test",
                actor="rule:test",
                assigned_at=MONDAY,
                due_at=MONDAY + timedelta(minutes=minutes),
            )
        )


def _lines(queue: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(i["type"], i["task_id"] if i["type"] == "task" else i["contact_name"]) for i in queue]


async def test_limit_one_is_the_callback_due_now_not_yesterdays_follow_up(
    database_url: str, frozen: FrozenClock
) -> None:
    async with task_hub(database_url) as hub:
        rita = await hub.create_rep("Rita", email="rita@example.com", time_zone="America/New_York")
        greta = await contact(hub, None, phone="+12125550142")
        follow_up = await _task(hub, "follow_up", greta, rita, -24 * 60)
        callback = await _task(hub, "callback", greta, rita, 15)

        whole = await call(hub, "GET", f"/api/reps/{rita}/queue")
        first = await call(hub, "GET", f"/api/reps/{rita}/queue", params={"limit": 1})

        assert _lines(whole) == [("task", callback), ("task", follow_up)]
        assert _lines(first) == [("task", callback)]


async def test_every_limit_gives_the_head_of_the_whole_list(database_url: str, frozen: FrozenClock) -> None:
    async with task_hub(database_url) as hub:
        ana = await hub.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
        cal = await contact(hub, None, name="Cal", time_zone="Europe/Berlin")
        eve = await contact(hub, None, name="Eve", time_zone="Europe/Berlin")
        # Each pair is built so that the soonest-due of the two comes second in the list.
        low = await _task(hub, "custom", eve, ana, -300, priority="low")
        urgent = await _task(hub, "follow_up", eve, ana, 30, priority="urgent")
        late = await _task(hub, "callback", cal, ana, -45)
        soon = await _task(hub, "callback", cal, ana, 40)
        await _lead(hub, ana, "Colin", "cold", -30)
        await _lead(hub, ana, "Nell", None, -60)
        await _lead(hub, ana, "Warren", "warm", 5)
        await _lead(hub, ana, "Hattie", "hot", 20)

        whole = _lines(await call(hub, "GET", f"/api/reps/{ana}/queue"))
        assert whole == [
            ("task", late),
            ("task", soon),
            ("task", urgent),
            ("task", low),
            ("lead", "Hattie"),
            ("lead", "Warren"),
            ("lead", "Colin"),
            ("lead", "Nell"),
        ]
        for limit in range(1, len(whole) + 1):
            cut = await call(hub, "GET", f"/api/reps/{ana}/queue", params={"limit": limit})
            assert _lines(cut) == whole[:limit], limit


async def test_limit_one_is_the_hot_lead_not_a_colder_one_due_sooner(database_url: str, frozen: FrozenClock) -> None:
    async with task_hub(database_url) as hub:
        ana = await hub.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
        await _lead(hub, ana, "Colin", "cold", -30)
        await _lead(hub, ana, "Warren", "warm", 5)
        await _lead(hub, ana, "Hattie", "hot", 20)

        first = await call(hub, "GET", f"/api/reps/{ana}/queue", params={"limit": 1})
        two = await call(hub, "GET", f"/api/reps/{ana}/queue", params={"limit": 2})

        assert _lines(first) == [("lead", "Hattie")]
        assert _lines(two) == [("lead", "Hattie"), ("lead", "Warren")]
