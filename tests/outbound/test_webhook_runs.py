"""How long one webhook run may hold on (hub/outbound/jobs.py).

A batch records its outcomes when all its POSTs are done. ``hub worker`` ends a job at JOB_TIMEOUT_SECONDS, and a
batch cut off there would leave POSTs made without an outcome, to be made again. Inside ``hub serve`` the jobs take
turns on one loop, and a batch of slow receivers would hold deadlines and reminders meanwhile.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.outbound import jobs
from hub.outbound.delivery import CONCURRENCY, lease_for
from hub.outbound.jobs import RUN_BUDGET_SECONDS, batch_size, deliver_webhooks
from hub.worker import JOB_TIMEOUT_SECONDS
from tests.conftest import Hub
from tests.outbound.receiver import running_receiver
from tests.outbound.test_delivery import deliveries, publish_one, subscribe


@given(st.floats(min_value=0.5, max_value=60.0))  # HUB_WEBHOOK_TIMEOUT_SECONDS' range (more than 0, at most 60)
def test_a_run_ends_inside_the_workers_job_timeout_however_slow_the_receivers(timeout: float) -> None:
    batch = batch_size(timeout, embedded=False)
    assert CONCURRENCY <= batch <= 100
    # The budget may run out just as a batch starts: that batch, every wave of it at the full timeout, still ends
    # before arq cancels the job.
    assert RUN_BUDGET_SECONDS + lease_for(batch, timeout).total_seconds() < JOB_TIMEOUT_SECONDS


def test_batches_are_as_large_as_the_timeout_allows() -> None:
    assert [batch_size(t, embedded=False) for t in (1.0, 15.0, 30.0, 60.0)] == [100, 100, 96, 48]
    assert batch_size(15.0, embedded=True) == CONCURRENCY


async def test_an_embedded_batch_is_one_wave_and_the_next_run_goes_on(
    sqlite_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = sqlite_hub
    monkeypatch.setattr(jobs, "EMBEDDED_RUN_BUDGET_SECONDS", 0.0)  # a run past its budget: one batch, then stop
    async with running_receiver() as receiver:
        await subscribe(hub, receiver.url, ["call.missed"])
        for n in range(CONCURRENCY + 4):
            await publish_one(hub, f"k{n}")
        ctx = {**hub.runtime.jobs, "embedded": True}
        assert await deliver_webhooks(ctx) == CONCURRENCY
        assert await deliver_webhooks(ctx) == 4
    assert len(receiver.received) == CONCURRENCY + 4
    assert {d.status for d in await deliveries(hub)} == {"delivered"}
