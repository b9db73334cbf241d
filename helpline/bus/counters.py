"""Cluster-wide counters in Redis: rate limits and per-identity stream caps that hold across nodes.

With a shared bus every node is one of several behind a balancer, so limits counted per process let a
client through N times (issue 13). Here they are counted in the Redis the bus already uses:

- **rate limits** as a sliding window of one minute (the previous minute's count, weighted by how much
  of it still overlaps, plus the current one), in one Lua script so that two nodes never both take the
  last token. A node does not ask Redis on every request: it *leases* a slice of the budget (a
  twentieth of the limit, at least what the request costs) and spends it locally, so the per-message
  cost is one round trip per slice, and the most the cluster can overshoot is one unspent slice per node;
- **stream caps** as a sorted set per identity of ``node:stream`` leases scored by their expiry; each
  node renews the leases of its open streams, so a node that dies gives its streams back within
  :data:`LEASE_SECONDS`.

When Redis does not answer, each node falls back to its own counts (the per-process limiter and the
stream registry, which keep counting meanwhile): a bounded fallback, at most N times the limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from helpline.bus.redis import split_url

__all__ = ["LEASE_SECONDS", "SharedCounters"]

logger = logging.getLogger("helpline.bus")

WINDOW_SECONDS = 60
LEASE_SECONDS = 60.0  # a stream lease outlives its node by at most this
RENEW_SECONDS = 20.0
SLICE_SECONDS = 10.0  # an unspent rate-limit slice is given up after this
REDIS_TIMEOUT = 0.5  # a Redis slower than this counts as down: the local count decides
DOWN_SECONDS = 1.0  # after a failure, rate limits leave Redis alone this long (one wait, not one per request)

# KEYS: current window, previous window. ARGV: limit, wanted, at least, weight of the previous window.
# Grants min(wanted, room) if that is at least "at least", else 0; returns the grant and the room left.
_TAKE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local room = tonumber(ARGV[1]) - (previous * tonumber(ARGV[4]) + current)
local grant = math.min(tonumber(ARGV[2]), room)
if grant < tonumber(ARGV[3]) then
  return {'0', tostring(room)}
end
redis.call('INCRBYFLOAT', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[5]))
return {tostring(grant), tostring(room - grant)}
"""

# KEYS: the identity's lease set. ARGV: now, cap, member, expiry. 1 if admitted, else 0.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4]) - tonumber(ARGV[1])) + 1)
return 1
"""


@dataclass
class _Slice:
    tokens: float
    until: float


class SharedCounters:
    """One per app when the bus is Redis (``Services.counters``); ``None`` otherwise."""

    def __init__(self, url: str) -> None:
        connection, channel = split_url(url)
        self.prefix = f"{channel}:limits"
        self.node = uuid.uuid4().hex[:12]
        self._client: Redis = Redis.from_url(
            connection, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        self._take = self._client.register_script(_TAKE)
        self._admit = self._client.register_script(_ADMIT)
        self._slices: dict[str, _Slice] = {}
        self._asking: dict[str, asyncio.Future[float | None]] = {}  # key → the answer being asked for
        self._down_until = 0.0  # monotonic time until which rate limits do not ask Redis
        self._streams: dict[str, str] = {}  # member → identity, for renewal
        self._renewer: asyncio.Task[None] | None = None
        self._warned_at = -60.0

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self._client.aclose()

    def _fell_back(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at > 10:  # one line per outage, not one per request
            self._warned_at = time.monotonic()
            logger.warning("shared counters unreachable (%s): each node limits on its own", type(exc).__name__)

    # -- rate limits ------------------------------------------------------------------------------
    async def take(self, key: str, cost: float, per_minute: int) -> float | None:
        """Spend ``cost`` of ``key``'s budget: None if granted (or if Redis does not answer: the local
        count decides then), else the seconds to wait.

        One request to Redis per key at a time: requests that arrive together (a page's burst) wait for
        the slice the first one is asking for and spend from it. Each asking for its own reserved a
        twentieth of the budget apiece, so twenty concurrent requests spent a minute's budget at once.
        """
        while not self._spend(key, cost):
            if time.monotonic() < self._down_until:
                return None  # Redis failed a moment ago: the local count decides, without a wait per request
            asking = self._asking.get(key)
            if asking is None:
                return await self._ask(key, cost, per_minute)
            refused = await asyncio.shield(asking)
            if refused is not None:
                return refused  # the cluster has just said no for this key: no one asks again at once
        return None  # spent from a slice (its own, or the one asked for while this request waited)

    def _spend(self, key: str, cost: float) -> bool:
        held = self._slices.get(key)
        if held is not None and held.until > time.monotonic() and held.tokens >= cost:
            held.tokens -= cost
            return True
        return False

    async def _ask(self, key: str, cost: float, per_minute: int) -> float | None:
        asking: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._asking[key] = asking
        answer = None
        try:
            answer = await self._take_slice(key, cost, per_minute)
            return answer
        finally:
            del self._asking[key]
            asking.set_result(answer)

    async def _take_slice(self, key: str, cost: float, per_minute: int) -> float | None:
        now = time.monotonic()
        wanted = max(cost, per_minute / 20)
        window = int(time.time() // WINDOW_SECONDS)
        weight = 1 - (time.time() % WINDOW_SECONDS) / WINDOW_SECONDS
        keys = [f"{self.prefix}:{key}:{window}", f"{self.prefix}:{key}:{window - 1}"]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                granted, room = await self._take(keys=keys, args=[per_minute, wanted, cost, weight, WINDOW_SECONDS])
        except (RedisError, OSError, TimeoutError) as exc:
            self._fell_back(exc)
            self._down_until = time.monotonic() + DOWN_SECONDS
            return None
        grant, left = float(granted), float(room)
        if grant <= 0:
            self._slices.pop(key, None)
            rate = per_minute / WINDOW_SECONDS
            return max(1.0, math.ceil((cost - max(0.0, left)) / rate)) if rate > 0 else float(WINDOW_SECONDS)
        if len(self._slices) >= 100_000:
            self._slices.clear()  # bounded memory; unspent slices are simply given up
        self._slices[key] = _Slice(grant - cost, now + SLICE_SECONDS)
        return None

    # -- stream caps ------------------------------------------------------------------------------
    async def admit_stream(self, identity: str, cap: int) -> str | None:
        """A lease for one more stream of ``identity``; None if the cluster holds ``cap`` already; ``""``
        if Redis does not answer (the node's own count decides then)."""
        member = f"{self.node}:{uuid.uuid4().hex[:12]}"
        now = time.time()
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                admitted = await self._admit(
                    keys=[self._stream_key(identity)], args=[now, cap, member, now + LEASE_SECONDS]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._fell_back(exc)
            return ""
        if not int(admitted):
            return None
        self._streams[member] = identity
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="helpline-stream-leases")
        return member

    async def release_stream(self, member: str) -> None:
        identity = self._streams.pop(member, None)
        if identity is None:
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await self._client.zrem(self._stream_key(identity), member)
        except (RedisError, OSError, TimeoutError):
            pass  # the lease expires by itself

    def _stream_key(self, identity: str) -> str:
        return f"{self.prefix}:streams:{identity}"

    async def _renew(self) -> None:
        while self._streams:
            await asyncio.sleep(RENEW_SECONDS)
            expiry = time.time() + LEASE_SECONDS
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for member, identity in tuple(self._streams.items()):
                        pipe.zadd(self._stream_key(identity), {member: expiry})
                        pipe.expire(self._stream_key(identity), int(LEASE_SECONDS) + 1)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                logger.warning("stream leases not renewed: %s", type(exc).__name__)
