"""The background job that runs dashboard and API imports, on the embedded worker and on arq alike.

The import's row in the database is its state: each batch commits its rows with the import's next
offset, so a job killed mid-import (a deploy, a crash) loses nothing and the next tick goes on from
there. Redis only carries the ticks; two workers on the same import take turns (the row lock).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hub.config import Settings
from hub.db import session_scope
from hub.imports import service
from hub.imports.cursor import CursorCache
from hub.mail.links import LinkMaker
from hub.policy.store import RulesStore

log = logging.getLogger(__name__)
BUDGET_SECONDS = 20.0
EMBEDDED_BUDGET_SECONDS = 1.0
"""Inside ``hub serve`` the jobs (and the requests) share one event loop: short turns keep pages responsive."""
DRAFT_SWEEP_SECONDS = 600.0
"""How often (per worker) abandoned drafts are looked for: the job runs every second, the sweep need not."""


async def run_imports(ctx: dict[str, Any]) -> int:
    """Import batches of the oldest queued or running import for a while; returns the rows processed."""
    settings: Settings = ctx["settings"]
    rules: RulesStore = ctx["rules"]
    cursors: CursorCache = ctx.setdefault("import_cursors", CursorCache())
    links: LinkMaker = ctx["links"]
    await _expire_drafts(ctx, settings)
    env = service.ImportEnv(
        policy=rules.current,
        default_region=settings.default_region,
        secret_key=links.secret,
        fallback_keys=links.fallbacks,
        batch_size=settings.import_batch_size,
    )
    budget = EMBEDDED_BUDGET_SECONDS if ctx.get("embedded") else BUDGET_SECONDS
    deadline = time.monotonic() + budget
    processed = 0
    while time.monotonic() < deadline:
        async with session_scope(ctx["sessions"]) as session:
            import_id = await service.next_runnable(session)
        if import_id is None:
            break
        async with session_scope(ctx["sessions"]) as session:
            before = await service.get_import(session, import_id, viewer=None)
            start = before.processed_rows
            after = await service.run_batch(session, import_id, env, cursors)
        if after is None:
            break  # another worker holds it this moment; the next tick looks again
        processed += after.processed_rows - start
        if after.status in service.FINISHED:
            log.info(
                "import %d %s: %d created, %d matched, %d skipped, %d failed",
                after.id,
                after.status,
                after.created_count,
                after.matched_count,
                after.skipped_count,
                after.failed_count,
            )
    return processed


async def _expire_drafts(ctx: dict[str, Any], settings: Settings) -> None:
    """Every DRAFT_SWEEP_SECONDS: fail the drafts nobody started within HUB_IMPORT_DRAFT_DAYS and delete their
    files (an uploaded CSV is personal data; a draft's would otherwise be kept for ever)."""
    now = time.monotonic()
    if now < ctx.get("import_drafts_swept", float("-inf")) + DRAFT_SWEEP_SECONDS:
        return
    async with session_scope(ctx["sessions"]) as session:
        expired = await service.expire_drafts(session, older_than_days=settings.import_draft_days)
    ctx["import_drafts_swept"] = now
    if expired:
        log.info("expired %d import drafts not started within %d days", expired, settings.import_draft_days)
