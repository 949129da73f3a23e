"""A person's hand-over, or recompute, racing the worker on the same lead or the same measurement (PostgreSQL)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import select

from hub import clock
from hub.reps.models import Rep
from hub.routing import deadlines, performance
from hub.routing.models import Assignment
from tests.conftest import FrozenClock, make_settings, start_hub, truncate_all
from tests.pg_waits import backend_pid, until_a_backend_waits
from tests.routing.test_concurrency import worker_context
from tests.routing.test_sla import LADDER, frozen, new_lead, sales_org  # noqa: F401 - fixtures


async def test_a_manual_assignment_while_the_deadline_hands_the_lead_on_leaves_one_owner(
    pg_database: str,
    frozen: FrozenClock,  # noqa: F811
) -> None:
    await truncate_all(pg_database)
    async with asynccontextmanager(start_hub)(make_settings(pg_database, rules_file=LADDER)) as hub:
        org = await sales_org(hub, ("Ana", "Ben"))
        assert org.manager is not None
        lead = await new_lead(hub)  # Ana's, 5 minutes
        frozen.advance(6 * 60)
        policy = hub.runtime.rules.current

        async with worker_context(hub) as worker_ctx:
            async with worker_ctx["sessions"]() as worker:
                # The worker takes the lead back from Ana and hands it on to Ben; not committed yet ...
                assert await deadlines.process_due(worker, policy, clock.now(), limit=1) == 1
                pid = await backend_pid(worker)

                async def by_hand() -> httpx.Response:  # ... while a manager gives the lead to Mia by hand
                    return await hub.client.post(
                        f"/api/contacts/{lead}/assign",
                        json={"rep_id": org.manager, "reason": "mine"},
                        headers=hub.auth(),
                    )

                manual = asyncio.create_task(by_hand())
                async with hub.session() as probe:
                    await until_a_backend_waits(probe, blocked_by=pid, what="the lead", or_done=manual)
                await worker.commit()
            response = await manual
        assert response.status_code == 201, response.text

        async with hub.session() as session:
            owners = list(
                await session.scalars(
                    select(Assignment.rep_id).where(Assignment.contact_id == lead, Assignment.ended_at.is_(None))
                )
            )
            counts = dict((await session.execute(select(Rep.id, Rep.open_leads))).all())
        assert owners == [org.manager]  # one open assignment: the last hand-over wins
        assert [counts[r] for r in org.reps] == [0, 0]
        assert counts[org.manager] == 1


async def test_a_recompute_by_hand_while_the_job_measures_is_no_500(
    pg_database: str,
    frozen: FrozenClock,  # noqa: F811
) -> None:
    await truncate_all(pg_database)
    async with asynccontextmanager(start_hub)(make_settings(pg_database, rules_file=LADDER)) as hub:
        await sales_org(hub, ("Ana", "Ben"))
        await new_lead(hub)  # Ana has a lead in the window: she is measured
        policy = hub.runtime.rules.current

        async with worker_context(hub) as worker_ctx:
            async with worker_ctx["sessions"]() as job:
                # The periodic job measures; not committed yet ...
                assert len(await performance.recompute(job, policy, clock.now())) == 1
                pid = await backend_pid(job)
                # ... while a manager asks for a measurement now
                asked = asyncio.create_task(hub.client.post("/api/routing/performance/recompute", headers=hub.auth()))
                async with hub.session() as probe:
                    await until_a_backend_waits(probe, blocked_by=pid, what="the measurements", or_done=asked)
                await job.commit()
            response = await asked
        assert response.status_code == 200, response.text
        assert len(response.json()) == 1
