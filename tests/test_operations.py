"""Health, readiness (database and Redis) and metrics."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from tests.conftest import Hub, make_settings, start_hub


async def test_healthz_and_readyz_on_sqlite(sqlite_hub: Hub) -> None:
    assert (await sqlite_hub.client.get("/healthz")).json() == {"status": "ok"}
    ready = await sqlite_hub.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


@pytest.fixture
async def hub_with_redis(sqlite_url: str, redis_url: str) -> AsyncIterator[Hub]:
    async for hub in start_hub(make_settings(sqlite_url, redis_url=redis_url)):
        yield hub


async def test_readyz_checks_redis_when_configured(hub_with_redis: Hub) -> None:
    ready = await hub_with_redis.client.get("/readyz")
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_is_503_when_a_dependency_is_down(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db", redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings, embedded_worker=False)
    transport = httpx.ASGITransport(app=app)
    threads_before = set(threading.enumerate())
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/readyz")
    # aiosqlite stops a connection that failed to open on its thread, and that thread then answers a future of
    # this event loop: let it finish while the loop still runs, or it raises "Event loop is closed" in whatever
    # test comes next on this process.
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=10)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("error")
    assert checks["redis"].startswith("error")


async def test_metrics_expose_request_counts(sqlite_hub: Hub) -> None:
    await sqlite_hub.client.get("/healthz")
    text = (await sqlite_hub.client.get("/metrics")).text
    assert 'hub_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "hub_http_request_duration_seconds_bucket" in text
