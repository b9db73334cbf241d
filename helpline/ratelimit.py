"""Per-identity rate limiting: a token bucket per key, in process memory.

Each node limits on its own (:class:`RateLimiter`); with a shared bus, :class:`Limiter` also spends
from the cluster's count (``bus/counters.py``), which leases slices of the budget so that a request
rarely waits for Redis; if Redis does not answer, the node's own count still holds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from helpline.errors import RateLimited


class RateLimiter:
    def __init__(self, per_minute: int, *, max_keys: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, per_minute))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def hit(self, key: str, cost: float = 1.0) -> None:
        """Spend ``cost`` from ``key``'s bucket or raise :class:`RateLimited` with a Retry-After."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            raise RateLimited("too many requests; slow down", retry_after=int((cost - tokens) / self.rate) + 1)
        self._buckets[key] = (tokens - cost, now)
        while len(self._buckets) > self.max_keys:  # bounded memory: forget the least recently seen
            self._buckets.popitem(last=False)


class SharedBudget(Protocol):
    async def take(self, key: str, cost: float, per_minute: int) -> float | None:
        """None if granted (or undecidable), else the seconds to wait."""


class Limiter:
    """A rate limit: the node's own token bucket, and with a shared bus the cluster's count too."""

    def __init__(self, per_minute: int, shared: SharedBudget | None = None) -> None:
        self.local = RateLimiter(per_minute)
        self.per_minute = per_minute
        self.shared = shared

    async def hit(self, key: str, cost: float = 1.0) -> None:
        """Spend ``cost`` from ``key``'s budget or raise :class:`RateLimited` with a Retry-After."""
        self.local.hit(key, cost)
        if self.shared is not None:
            wait = await self.shared.take(key, cost, self.per_minute)
            if wait is not None:
                raise RateLimited("too many requests; slow down", retry_after=int(wait))
