"""Rate limits shared through Redis by several API processes, and failing open when Redis is gone."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, Refused
from tests.conftest import make_settings, start_hub


async def test_redis_limiter_counts_across_instances(redis_url: str) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        limiters = [RedisRateLimiter(first), RedisRateLimiter(second)]
        results = [await limiters[n % 2].hit(key, limit=3, window_seconds=60) for n in range(5)]
    finally:
        await first.aclose()
        await second.aclose()
    assert results[:3] == [None, None, None]
    assert all(r is not None and 1 <= r <= 60 for r in results[3:])


async def test_redis_limiter_lets_requests_through_when_redis_is_down() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await RedisRateLimiter(unreachable).hit("k", limit=1, window_seconds=60) is None
        assert await RedisRateLimiter(unreachable).hit("k", limit=1, window_seconds=60) is None
    finally:
        await unreachable.aclose()


async def test_memory_limiter_resets_per_window_and_bounds_memory() -> None:
    limiter = MemoryRateLimiter(max_keys=10)
    results = [await limiter.hit("a", limit=2, window_seconds=3600) for _ in range(3)]
    assert results[:2] == [None, None]
    assert results[2] is not None
    for n in range(50):
        assert await limiter.hit(f"ip-{n}", limit=5, window_seconds=3600) is None
    assert len(limiter._windows) <= 10  # a flood of distinct addresses cannot grow memory without bound


async def test_two_api_processes_share_the_form_limit_through_redis(sqlite_url: str, redis_url: str) -> None:
    settings = make_settings(sqlite_url, redis_url=redis_url, form_rate_per_ip=2, form_rate_window_seconds=3600)
    # A client address of its own, so counters left in Redis by earlier runs do not interfere.
    ip = str(ipaddress.IPv6Address(uuid.uuid4().int))
    statuses = []
    async for first in start_hub(settings, client_ip=ip):
        await first.create_source(slug="website", name="Website")
        async for second in start_hub(settings, client_ip=ip):
            for n, hub in enumerate((first, second, first)):
                response = await hub.client.post("/webhooks/forms/website", json={"email": f"s{n}@example.com"})
                statuses.append(response.status_code)
    assert statuses == [202, 202, 429]


async def test_redis_counter_expires_with_its_window(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        limiter = RedisRateLimiter(redis)
        for _ in range(3):
            assert await limiter.hit(key, limit=10, window_seconds=60) is None
        (counter,) = await redis.keys(f"hub:rl:{key}:*")
        assert int(await redis.get(counter)) == 3
        assert 0 < await redis.ttl(counter) <= 61  # set with the first hit, never left without an expiry
    finally:
        await redis.aclose()


async def test_redis_limiter_keeps_counting_after_redis_forgets_its_script(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        limiter = RedisRateLimiter(redis)
        assert await limiter.hit(key, limit=1, window_seconds=60) is None
        await redis.script_flush()  # what a Redis restart does to loaded scripts
        assert await limiter.hit(key, limit=1, window_seconds=60) is not None
    finally:
        await redis.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisRateLimiter(redis)
    finally:
        await redis.aclose()


async def test_hit_each_counts_keys_in_order_and_stops_at_the_first_over_its_limit(limiter: RateLimiter) -> None:
    ip, shared = f"ip:{uuid.uuid4().hex}", f"source:{uuid.uuid4().hex}"
    limits = [(ip, 2), (shared, 3)]
    results = [await limiter.hit_each(limits, window_seconds=3600) for _ in range(4)]
    assert results[:2] == [None, None]
    # The third and fourth hits are refused on the address's key...
    assert [r.key if r else None for r in results[2:]] == [ip, ip]
    assert all(isinstance(r, Refused) and 1 <= r.retry_after <= 3600 for r in results[2:])
    # ...and did not count against the shared key: another address still has its last slot on it.
    other = f"ip:{uuid.uuid4().hex}"
    assert await limiter.hit_each([(other, 5), (shared, 3)], window_seconds=3600) is None
    refused = await limiter.hit_each([(other, 5), (shared, 3)], window_seconds=3600)
    assert refused is not None and refused.key == shared
