"""Per-identity rate limiting: a token bucket per key, in process memory.

Each node limits on its own; with N nodes behind a balancer a client gets at most N times the rate,
which is the usual trade for not putting a shared store on every request's path.
"""

from __future__ import annotations

import time
from collections import OrderedDict

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
