"""Rate limits and per-identity stream caps hold across nodes when the bus is Redis (bus/counters.py).

What each test shows, and how it could fail:
- two nodes on one PostgreSQL database and one Redis: wrong-password logins for one username,
  alternating between the nodes, are refused once the *cluster* has seen the limit (with per-process
  counting each node would allow the limit again: twice as many);
- the per-identity stream cap counts streams on both nodes, and a closed stream gives its place back;
- with Redis unreachable, each node still limits on its own count (the bounded fallback), and nothing
  fails because of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from helpline.bus.counters import SharedCounters
from helpline.errors import RateLimited
from helpline.ratelimit import Limiter
from tests.conftest import LiveServer, make_settings
from tests.streams import open_stream, opened

DEMO_PASSWORD = "cluster-limits-demo"
LOGINS_PER_MINUTE = 4


@pytest.fixture
def two_nodes(postgres_url: str, redis_bus_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    from tests.conftest import empty_postgres

    asyncio.run(empty_postgres(postgres_url))
    settings = make_settings(
        postgres_url,
        bus_url=redis_bus_url,
        demo=True,
        demo_password=DEMO_PASSWORD,
        login_attempts_per_minute=LOGINS_PER_MINUTE,
        max_streams_per_identity=2,
    )
    first = LiveServer(settings).start()
    second = LiveServer(settings).start()
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


@pytest.mark.postgres
@pytest.mark.redis
async def test_login_attempts_are_limited_across_the_cluster(two_nodes: tuple[LiveServer, LiveServer]) -> None:
    nodes = [httpx.AsyncClient(base_url=node.url, timeout=10) for node in two_nodes]
    try:
        statuses = []
        for attempt in range(LOGINS_PER_MINUTE + 2):
            response = await nodes[attempt % 2].post(
                "/api/v1/auth/login", json={"username": "rep", "password": f"wrong-{attempt}"}
            )
            statuses.append(response.status_code)
        # Per-username: the cluster allows LOGINS_PER_MINUTE attempts in all, then refuses on either node.
        assert statuses == [401] * LOGINS_PER_MINUTE + [429, 429], statuses
    finally:
        for client in nodes:
            await client.aclose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_stream_cap_counts_the_streams_on_every_node(two_nodes: tuple[LiveServer, LiveServer]) -> None:
    first, second = two_nodes
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        token = (await http.post("/api/v1/deployments/demo/sessions", json={})).json()["access_token"]
    async with open_stream(first.url, token) as one, open_stream(second.url, token) as two:
        await opened(one)
        await opened(two)
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            refused = await http.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited", refused.text
    # Both closed: their leases are given back (asynchronously), and a new stream is admitted again.
    deadline = time.monotonic() + 10
    while True:
        async with open_stream(second.url, token) as again:
            if again.response.status_code == 200:
                await opened(again)
                break
        assert time.monotonic() < deadline, "the closed streams' places never came back"
        await asyncio.sleep(0.1)


async def test_without_redis_each_node_limits_on_its_own() -> None:
    counters = SharedCounters("redis://127.0.0.1:1/0?channel=nowhere")  # nothing listens there
    limiter = Limiter(3, counters)
    try:
        for _ in range(3):
            await limiter.hit("someone")  # Redis does not answer: the local count decides
        with pytest.raises(RateLimited):
            await limiter.hit("someone")
        await limiter.hit("someone-else")
    finally:
        await counters.close()


@pytest.mark.redis
async def test_a_burst_of_requests_on_one_node_reserves_one_slice_of_the_clusters_budget(redis_bus_url: str) -> None:
    """Twenty requests at once from one client (a page loading) ask Redis once and spend from that
    slice. Each asking for a slice of its own reserved a twentieth of the budget apiece: the burst
    spent the minute's whole budget, and the client was refused everywhere while hardly using it."""
    first, second = SharedCounters(redis_bus_url), SharedCounters(redis_bus_url)  # two nodes
    try:
        await asyncio.gather(*(Limiter(600, first).hit("page-load") for _ in range(20)))
        other_node = Limiter(600, second)
        for _ in range(100):
            await other_node.hit("page-load")  # 120 of 600 used: the cluster has room
    finally:
        await first.close()
        await second.close()


@pytest.mark.redis
async def test_a_burst_beyond_the_budget_is_refused_past_the_limit_and_not_before(redis_bus_url: str) -> None:
    counters = SharedCounters(redis_bus_url)
    try:
        answers = await asyncio.gather(*(Limiter(3, counters).hit("burst") for _ in range(10)), return_exceptions=True)
        assert sum(a is None for a in answers) == 3
        assert all(isinstance(a, RateLimited) for a in answers if a is not None)
    finally:
        await counters.close()
