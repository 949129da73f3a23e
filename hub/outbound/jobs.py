"""The worker's job for outbound webhooks (listed in hub.jobs.PERIODIC_JOBS)."""

from __future__ import annotations

import time
from typing import Any

from hub.outbound.delivery import CONCURRENCY, deliver_due

BATCH = 100
RUN_BUDGET_SECONDS = 20.0
"""A run starts no batch after this long (the next tick, 5 s later, goes on)."""
EMBEDDED_RUN_BUDGET_SECONDS = 3.0
"""Inside ``hub serve`` the jobs take turns on one loop: a shorter run keeps deadlines and reminders on time."""
BATCH_SECONDS = 180.0
"""The longest one batch may take when every receiver is slow. A batch records its outcomes when all its POSTs are
done, and ``hub worker`` ends a job at 300 s (hub.worker.JOB_TIMEOUT_SECONDS): POSTs made by a batch cut off there
would have no outcome, and be made again, attempt after attempt. Budget plus one batch stays inside it."""


def batch_size(timeout: float, *, embedded: bool) -> int:
    """Deliveries per batch: as many waves of CONCURRENCY POSTs as fit in BATCH_SECONDS at ``timeout`` each (at most
    BATCH); one wave embedded, where a slow receiver would hold every other job of the API process meanwhile."""
    waves = 1 if embedded else max(1, int(BATCH_SECONDS // timeout))
    return min(BATCH, CONCURRENCY * waves)


async def deliver_webhooks(ctx: dict[str, Any]) -> int:
    """POST due webhook deliveries (ctx: ``sessions``, ``http``, ``box``, ``settings``); safe to run twice."""
    embedded = bool(ctx.get("embedded"))
    limit = batch_size(ctx["settings"].webhook_timeout_seconds, embedded=embedded)
    # Real elapsed time, not the hub's clock (which tests freeze): a budget limits how long this run holds on.
    deadline = time.monotonic() + (EMBEDDED_RUN_BUDGET_SECONDS if embedded else RUN_BUDGET_SECONDS)
    total = 0
    while True:
        done = await deliver_due(ctx["sessions"], ctx["http"], ctx["box"], ctx["settings"], limit=limit)
        total += done
        if done < limit or time.monotonic() >= deadline:
            return total
