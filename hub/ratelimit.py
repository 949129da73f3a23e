"""Fixed-window rate limits: in process memory (embedded mode) or in Redis (shared by API processes)."""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """Counts hits per key; ``hit`` returns seconds to wait when the key is over its limit."""

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> int | None:
        """Record a hit; None if allowed, else the Retry-After in seconds."""
        ...


class MemoryRateLimiter:
    """Per-process windows; enough for the single embedded process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> int | None:
        now = time.time()
        window = int(now // window_seconds)
        start, count = self._windows.get(key, (window, 0))
        if start != window:
            count = 0
        count += 1
        if len(self._windows) >= self._max_keys and key not in self._windows:
            self._forget_old(window)
        self._windows[key] = (window, count)
        if count > limit:
            return max(1, math.ceil((window + 1) * window_seconds - now))
        return None

    def _forget_old(self, current_window: int) -> None:
        kept = {k: v for k, v in self._windows.items() if v[0] == current_window}
        if len(kept) >= self._max_keys:
            # A flood of distinct keys in one window: forget the oldest half rather than grow without bound.
            kept = dict(list(kept.items())[len(kept) // 2 :])
        self._windows = kept


_INCR_WITH_EXPIRY = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
"""The window's counter and its expiry in one atomic step: a counter can never be left without one."""


class RedisRateLimiter:
    """Windows in Redis, so every API process behind a load balancer shares the count.

    When Redis cannot be reached the limiter lets requests through: losing leads because
    a protective counter is down would be worse than a short unthrottled spell.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        # One command per hit, atomic: a MULTI/INCR/EXPIRE/EXEC pipeline cost a form post four commands'
        # packing and parsing, about half of a deferred post's own CPU (bench/ingest_forms.py).
        self._incr = redis.register_script(_INCR_WITH_EXPIRY)

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> int | None:
        now = time.time()
        window = int(now // window_seconds)
        redis_key = f"hub:rl:{key}:{window}"
        try:
            # redis-py loads the script again by itself after a Redis restart or FLUSH (NOSCRIPT).
            count = await self._incr(keys=[redis_key], args=[window_seconds + 1])
        except (RedisError, OSError) as exc:
            log.warning("rate limit not applied, Redis unavailable: %s", type(exc).__name__)
            return None
        if int(count) > limit:
            return max(1, math.ceil((window + 1) * window_seconds - now))
        return None
