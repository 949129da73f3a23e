"""The lead escalation ladder at its edges (hub/routing/deadlines.py `escalate`, docs/RULES.md).

- A manager on leave is passed over for the head of sales: the escalation deadline runs in the holder's working
  time, which leave cuts out, so a hot lead would wait for the end of it. The assignment names who was skipped,
  and leave with no end in the calendar reads "until further notice".
- A head of sales who takes leads and misses one is not escalated to again.
- The manager's open-lead counter is written under the rep's lock, as every other hand-out does (PostgreSQL).
- A rep who has left but is still behind a known phone number can call a lead: the call is recorded, and the
  lead goes to the rules.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from hub import clock
from hub.contacts import service as contacts
from hub.reps.models import Rep
from hub.routing import deadlines, ownership
from hub.routing.models import Assignment
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, truncate_all
from tests.pg_waits import backend_pid, until_a_backend_waits
from tests.routing.test_concurrency import worker_context
from tests.routing.test_sla import (  # noqa: F401 - fixtures
    LADDER,
    OFFICE_HOURS,
    TWILIO,
    TWILIO_FIXTURES,
    TWILIO_TOKEN,
    assignments,
    call_completed,
    chain_of,
    entries,
    frozen,
    get,
    hub_with,
    ladder,
    new_lead,
    process,
    sales_org,
)


async def test_a_manager_on_leave_is_passed_over_for_the_head_of_sales(
    sqlite_url: str,
    frozen: FrozenClock,  # noqa: F811
) -> None:
    async with hub_with(sqlite_url, LADDER) as hub:
        org = await sales_org(hub, ("Ana",))
        assert org.manager is not None and org.head is not None
        today = frozen.at.date()
        away = await hub.client.patch(
            f"/api/reps/{org.manager}",
            json={"absences": [{"start": today.isoformat(), "end": (today + timedelta(days=13)).isoformat()}]},
            headers=hub.auth(),
        )
        assert away.status_code == 200, away.text
        lead = await new_lead(hub)  # hot: Ana has 5 minutes, and nobody else in the team

        frozen.advance(6 * 60)
        assert await process(hub) == 1

        chain = await assignments(hub, lead)
        assert chain_of(chain)[-1] == (org.head, "escalated", 1, 2, None)
        assert chain[-1]["due_at"] is None  # the top of the ladder
        reason = chain[-1]["reason"]
        assert "passed over the team manager Mia Manager" in reason and "absent until" in reason

        # Back from leave, the manager is the first rung again.
        back = await hub.client.patch(f"/api/reps/{org.manager}", json={"absences": []}, headers=hub.auth())
        assert back.status_code == 200
        second = await new_lead(hub, "Hannah Hot")
        frozen.advance(6 * 60)
        assert await process(hub) == 1
        assert chain_of(await assignments(hub, second))[-1] == (org.manager, "escalated", 1, 1, None)


@pytest.mark.parametrize(
    "absence",
    [
        pytest.param({"start": "2026-03-01", "end": "9999-12-31"}, id="leave-to-the-last-day"),
        pytest.param({"start": "2026-03-01T00:00:00+00:00", "end": "9999-12-31T23:00:00-05:00"}, id="past-the-end"),
    ],
)
async def test_a_manager_on_leave_without_an_end_is_passed_over_until_further_notice(
    ladder: Hub,  # noqa: F811
    frozen: FrozenClock,  # noqa: F811
    absence: dict[str, str],
) -> None:
    """Leave stored before the API refused the calendar's last year runs to the calendar's end: the head of sales
    reads that the manager is away until further notice, not until the calendar's last microsecond."""
    org = await sales_org(ladder, ("Ana",))
    assert org.manager is not None and org.head is not None
    async with ladder.session() as session:
        manager = await session.get(Rep, org.manager)
        assert manager is not None
        manager.absences = [absence]  # straight to the column, as the API no longer takes it
    lead = await new_lead(ladder)

    frozen.advance(6 * 60)
    assert await process(ladder) == 1

    chain = await assignments(ladder, lead)
    assert chain_of(chain)[-1] == (org.head, "escalated", 1, 2, None)
    reason = (
        "escalated to the head of sales after Ana missed the first-touch deadline; "
        f"passed over the team manager Mia Manager (rep {org.manager}), absent until further notice"
    )
    assert chain[-1]["reason"] == reason
    told = await get(ladder, "/api/notifications", rep_id=org.head, limit=200)
    assert [n["message"] for n in told["items"] if n["kind"] == "lead_escalated"] == [
        f"Escalated to you: Harry Hot (hot); {reason}"
    ]


async def test_a_head_of_sales_who_missed_a_lead_is_not_escalated_to(
    sqlite_url: str,
    frozen: FrozenClock,  # noqa: F811
    tmp_path: Path,
) -> None:
    rules = yaml.safe_load(LADDER.read_text())
    rules["routing"]["max_hops"] = 0
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    async with hub_with(sqlite_url, path) as hub:
        # A small company: the head of sales takes leads in team Sales too, with nobody above them.
        head = await hub.create_rep(
            "Hal Head", email="head@example.com", time_zone="Europe/Berlin", working_hours=OFFICE_HOURS
        )
        made = await hub.client.post("/api/teams", json={"name": "Sales", "member_ids": [head]}, headers=hub.auth())
        assert made.status_code == 201, made.text
        lead = await new_lead(hub)
        assert chain_of(await assignments(hub, lead)) == [(head, "rule", 0, 0, None)]

        frozen.advance(6 * 60)  # Hal misses his 5 minutes
        assert await process(hub) == 1

        assert chain_of(await assignments(hub, lead)) == [(head, "rule", 0, 0, "sla_breach")]
        failed = await entries(hub, lead, "escalation_failed")
        assert [e["data"]["after_rep_id"] for e in failed] == [head]


async def test_an_escalation_and_a_hand_out_to_the_same_manager_both_count(
    pg_database: str,
    frozen: FrozenClock,  # noqa: F811
) -> None:
    await truncate_all(pg_database)
    async with asynccontextmanager(start_hub)(make_settings(pg_database, rules_file=LADDER)) as hub:
        other = await new_lead(hub, "Olga Other", hot=False)  # no team yet: she waits in the queue, unowned
        org = await sales_org(hub, ("Ana",))
        mia = org.manager
        assert mia is not None
        missed = await new_lead(hub, "Harry Hot")  # Ana's, 5 minutes
        frozen.advance(6 * 60)

        async with worker_context(hub) as manager_ctx, worker_context(hub) as worker_ctx:
            # A manager gives Olga to Mia by hand, and holds Mia's row until it commits ...
            async with manager_ctx["sessions"]() as by_hand:
                olga = await contacts.get_live_contact(by_hand, other)
                policy = hub.runtime.rules.current
                await ownership.by_hand(by_hand, olga, mia, policy, clock.now(), actor="boss", reason="take it")
                pid = await backend_pid(by_hand)

                async def escalate() -> int:  # ... while the worker escalates Harry to Mia
                    async with worker_ctx["sessions"]() as session:
                        done = await deadlines.process_due(session, policy, clock.now(), limit=1)
                        await session.commit()
                        return done

                worker = asyncio.create_task(escalate())
                async with hub.session() as probe:
                    await until_a_backend_waits(probe, blocked_by=pid, what="Mia's row", or_done=worker)
                await by_hand.commit()
            assert await worker == 1

        async with hub.session() as session:
            owned = await session.scalars(
                select(Assignment.contact_id).where(Assignment.rep_id == mia, Assignment.ended_at.is_(None))
            )
            assert sorted(owned) == sorted([missed, other])
            counted = await session.scalar(select(Rep.open_leads).where(Rep.id == mia))
        assert counted == 2


async def test_a_call_from_a_rep_who_has_left_is_recorded_and_the_lead_routed(
    sqlite_url: str,
    frozen: FrozenClock,  # noqa: F811
) -> None:
    rep_phone, lead_phone = "+12125551234", "+13125550199"
    async with hub_with(sqlite_url, LADDER, **TWILIO) as hub:
        org = await sales_org(hub)
        ana, ben = org.reps
        patched = await hub.client.patch(
            f"/api/reps/{ana}", json={"phone": rep_phone, "status": "inactive"}, headers=hub.auth()
        )
        assert patched.status_code == 200, patched.text

        response = await call_completed(hub, rep_phone, lead_phone, frozen.at)
        assert response.status_code == 204, response.text

        found = await hub.client.get("/api/contacts", params={"phone": lead_phone}, headers=hub.auth())
        [lead] = found.json()["items"]
        assert [e["data"]["rep_id"] for e in await entries(hub, lead["id"], "call")] == [ana]
        assert lead["owner_rep_id"] == ben  # not Ana's: the rules gave it to who is still here
