"""What an import keeps: row keys as HMACs under the hub's secret key, and no draft's file for ever."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import select, update

from hub import clock
from hub.imports import service
from hub.imports.jobs import run_imports
from hub.imports.models import ImportedRow, ImportFile, LeadImport
from tests.conftest import Hub
from tests.imports.helpers import create, import_text

CSV = "email,name\nada@example.com,Ada\n"


async def test_row_keys_are_keyed_hashes_and_a_rerun_still_skips(hub: Hub) -> None:
    first = await import_text(hub, CSV, key_column="email")
    again = await import_text(hub, CSV, key_column="email")

    assert (first.created_count, again.skipped_count, again.created_count) == (1, 1, 0)
    async with hub.session() as session:
        (key,) = (await session.scalars(select(ImportedRow.row_key))).all()
    assert key != hashlib.sha256(b"key:ada@example.com").hexdigest()  # a guessed address cannot be confirmed
    secret = hub.runtime.secret_key.encode()
    assert key == hmac.new(secret, b"import-row:key:ada@example.com", hashlib.sha256).hexdigest()


async def test_drafts_not_started_in_time_lose_their_file(hub: Hub) -> None:
    old = await create(hub, CSV, start=False)
    fresh = await create(hub, CSV, start=False)
    started = await create(hub, CSV, start=True)
    days = hub.settings.import_draft_days
    async with hub.session() as session:
        moment = clock.now() - timedelta(days=days, minutes=1)
        await session.execute(update(LeadImport).values(created_at=moment).where(LeadImport.id != fresh.id))

    hub.runtime.jobs.pop("import_drafts_swept", None)
    await run_imports(hub.runtime.jobs)  # the periodic job sweeps (at most every few minutes)

    async with hub.session() as session:
        states = {i.id: i for i in await session.scalars(select(LeadImport))}
        files = set((await session.scalars(select(ImportFile.import_id))).all())
        assert (states[old.id].status, states[fresh.id].status, states[started.id].status) == (
            "failed",
            "draft",
            "done",
        )
        assert f"not started within {days} days" in (states[old.id].error or "")
        assert files == {fresh.id}
        # Expired is expired: it cannot be started any more, and a second sweep finds nothing.
        assert await service.expire_drafts(session, older_than_days=days) == 0
    response = await hub.client.post(f"/api/imports/{old.id}/start", json={}, headers=hub.auth())
    assert response.status_code == 409
