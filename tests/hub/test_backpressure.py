"""An overloaded API process sheds load: when every pooled connection stays busy, a request is answered
503 with Retry-After within HUB_DB_POOL_TIMEOUT_SECONDS instead of queueing and failing later."""

from __future__ import annotations

import time

from sqlalchemy import text

from tests.conftest import make_settings, start_hub


async def test_a_request_that_finds_no_free_connection_gets_503_and_retry_after(pg_database: str) -> None:
    settings = make_settings(pg_database, db_pool_size=1, db_pool_timeout_seconds=0.5)
    async for hub in start_hub(settings):
        # pool_size 1 + max_overflow 1: two sessions in a transaction hold every connection there is.
        async with hub.runtime.sessions() as first, hub.runtime.sessions() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            started = time.monotonic()
            response = await hub.client.get("/api/contacts", headers=hub.auth())
            waited = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"] == "ServiceUnavailable"
        assert waited < 5
        assert (await hub.client.get("/api/contacts", headers=hub.auth())).status_code == 200  # and recovers
