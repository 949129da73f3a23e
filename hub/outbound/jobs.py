"""The worker's job for outbound webhooks (listed in hub.jobs.PERIODIC_JOBS)."""

from __future__ import annotations

from typing import Any

from hub.outbound.delivery import deliver_due

BATCH = 100
MAX_BATCHES_PER_RUN = 20


async def deliver_webhooks(ctx: dict[str, Any]) -> int:
    """POST due webhook deliveries (ctx: ``sessions``, ``http``, ``box``, ``settings``); safe to run twice."""
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        done = await deliver_due(ctx["sessions"], ctx["http"], ctx["box"], ctx["settings"], limit=BATCH)
        total += done
        if done < BATCH:
            break
    return total
