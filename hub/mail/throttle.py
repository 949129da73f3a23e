"""Send-rate throttles: one global token bucket and one per listed recipient domain.

A bucket holds at most one second's worth of tokens (never less than one), so a worker that was idle
sends at most a one-second burst before settling to the rate. Time is monotonic and injectable, so the
arithmetic is tested without sleeping. The limits are per worker process (see HUB_SEND_RATE_PER_SECOND).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up."""

    def __init__(self, rate: float, *, capacity: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, capacity if capacity is not None else rate)
        self._tokens = self.capacity
        self._updated = now

    def reserve(self, now: float) -> float:
        """Take one token (going into debt if none is left); seconds to wait before using it."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now


class Throttle:
    """Waits until both the global bucket and the recipient domain's bucket (if listed) allow one more message."""

    def __init__(
        self,
        rate_per_second: float,
        domain_rates: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        start = clock()
        self._global = TokenBucket(rate_per_second, now=start)
        self._domains = {d.lower(): TokenBucket(r, now=start) for d, r in (domain_rates or {}).items()}

    def delay(self, domain: str) -> float:
        """Reserve a slot for one message to ``domain``; seconds until it may go (0: now)."""
        now = self._clock()
        waits = [self._global.reserve(now)]
        bucket = self._domains.get(domain.lower())
        if bucket is not None:
            waits.append(bucket.reserve(now))
        return max(waits)

    async def wait(self, domain: str) -> None:
        """Sleep until one message to ``domain`` may be sent."""
        seconds = self.delay(domain)
        if seconds > 0:
            await self._sleep(seconds)


def recipient_domain(address: str) -> str:
    """The domain part of an address, lower-cased (the key of the per-domain buckets)."""
    return address.rpartition("@")[2].lower()
