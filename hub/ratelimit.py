"""Fixed-window rate limits: in process memory (embedded mode) or in Redis (shared by API processes)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refused:
    """The first key of a hit that was over its limit, and the seconds until its window ends."""

    key: str
    retry_after: int


class RateLimiter(Protocol):
    """Counts hits per key; ``hit`` returns seconds to wait when the key is over its limit."""

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> int | None:
        """Record a hit; None if allowed, else the Retry-After in seconds."""
        ...

    async def hit_each(self, limits: Sequence[tuple[str, int]], *, window_seconds: int) -> Refused | None:
        """Record a hit on each ``(key, limit)`` in order, stopping at the first key over its limit.

        Keys after a refused one are not counted: a flood from one address (refused on its own key)
        does not use up the budget of a key it shares with everyone, such as its form's.
        """
        ...


def _seconds_left(window: int, window_seconds: int, now: float) -> int:
    return max(1, math.ceil((window + 1) * window_seconds - now))


class _CountsKeysInOrder:
    """``hit`` as ``hit_each`` of one key, for the limiters below."""

    async def hit_each(self, limits: Sequence[tuple[str, int]], *, window_seconds: int) -> Refused | None:
        raise NotImplementedError

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> int | None:
        refused = await self.hit_each([(key, limit)], window_seconds=window_seconds)
        return refused.retry_after if refused else None


class MemoryRateLimiter(_CountsKeysInOrder):
    """Per-process windows; enough for the single embedded process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    async def hit_each(self, limits: Sequence[tuple[str, int]], *, window_seconds: int) -> Refused | None:
        now = time.time()
        window = int(now // window_seconds)
        for key, limit in limits:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                count = 0
            count += 1
            if len(self._windows) >= self._max_keys and key not in self._windows:
                self._forget_old(window)
            self._windows[key] = (window, count)
            if count > limit:
                return Refused(key, _seconds_left(window, window_seconds, now))
        return None

    def _forget_old(self, current_window: int) -> None:
        kept = {k: v for k, v in self._windows.items() if v[0] == current_window}
        if len(kept) >= self._max_keys:
            # A flood of distinct keys in one window: forget the oldest half rather than grow without bound.
            kept = dict(list(kept.items())[len(kept) // 2 :])
        self._windows = kept


_INCR_EACH_WITH_EXPIRY = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, ARGV[1])
  end
  if count > tonumber(ARGV[i + 1]) then
    return i
  end
end
return 0
"""
"""Each key's counter and its expiry in one atomic step (a counter is never left without one), in order up
to the first key over its limit (ARGV[i + 1]); returns that key's 1-based position, or 0."""


class RedisRateLimiter(_CountsKeysInOrder):
    """Windows in Redis, so every API process behind a load balancer shares the count.

    When Redis cannot be reached the limiter lets requests through: losing leads because
    a protective counter is down would be worse than a short unthrottled spell.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        # One command per request, whatever the number of keys, atomic: a MULTI/INCR/EXPIRE/EXEC pipeline
        # per key cost a form post eight commands' packing and parsing, most of a deferred post's own CPU,
        # and one script call per key still cost a sixth of it (bench/ingest_forms.py).
        self._incr_each = redis.register_script(_INCR_EACH_WITH_EXPIRY)

    async def hit_each(self, limits: Sequence[tuple[str, int]], *, window_seconds: int) -> Refused | None:
        if not limits:
            return None
        now = time.time()
        window = int(now // window_seconds)
        keys = [f"hub:rl:{key}:{window}" for key, _ in limits]
        try:
            # redis-py loads the script again by itself after a Redis restart or FLUSH (NOSCRIPT).
            position = int(await self._incr_each(keys=keys, args=[window_seconds + 1, *(n for _, n in limits)]))
        except (RedisError, OSError) as exc:
            log.warning("rate limit not applied, Redis unavailable: %s", type(exc).__name__)
            return None
        if position == 0:
            return None
        return Refused(limits[position - 1][0], _seconds_left(window, window_seconds, now))
