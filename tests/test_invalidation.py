"""Disabling a user or changing their permissions applies on every node at once (domain/invalidation.py).

What each test shows, and how it could fail:
- on one node, an open stream of a user who is disabled ends with ``stream.reconnect`` (reason
  ``revalidate``) and the token is refused from then on; a supervisor who loses ``supervisor`` gets a
  stream of their own conversations only on reconnecting;
- on two nodes sharing PostgreSQL and Redis, with a principal cache far longer than the test, the node
  that did *not* make the change refuses the disabled user and ends their stream: only the bus's
  invalidation can have done that;
- when the listener's subscription is lost (events may have been missed), every cached principal is
  dropped and caching falls to at most 1 s until it is subscribed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from helpline.bus.memory import MemoryBus
from helpline.domain.invalidation import UNHEALTHY_CACHE_SECONDS, Invalidation
from tests.conftest import LiveServer, make_settings
from tests.streams import LiveWorld, open_stream, opened

DEMO_PASSWORD = "invalidation-demo-password"
LONG_CACHE = 600.0  # far longer than any test: only an invalidation can refresh a cached principal


async def refused_within(http: httpx.AsyncClient, token: str, seconds: float) -> float:
    """Poll until the token is refused (401); the seconds it took. Fails after ``seconds``."""
    started = time.monotonic()
    while True:
        response = await http.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        if time.monotonic() - started > seconds:
            raise AssertionError(f"still accepted after {seconds} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def node(sqlite_url: str) -> Iterator[LiveServer]:
    settings = make_settings(sqlite_url, demo=True, demo_password=DEMO_PASSWORD, principal_cache_seconds=LONG_CACHE)
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def world(node: LiveServer) -> AsyncIterator[LiveWorld]:
    async with LiveWorld(node.url, DEMO_PASSWORD) as live:
        yield live


async def test_a_disabled_users_stream_ends_and_their_token_is_refused(node: LiveServer, world: LiveWorld) -> None:
    token = world.tokens["rep2"]
    async with open_stream(node.url, token) as stream:
        await opened(stream)
        response = await world.http.patch(
            f"/api/v1/admin/users/{world.ids['rep2']}",
            json={"disabled": True},
            headers={"Authorization": f"Bearer {world.tokens['admin']}"},
        )
        assert response.status_code == 200, response.text
        events = await stream.drain_to_end(timeout=5)
    assert [e.event for e in events][-1:] == ["stream.reconnect"], events
    assert events[-1].json()["reason"] == "revalidate"
    await refused_within(world.http, token, 0.5)  # the same node: at once


async def test_a_supervisor_who_loses_supervision_sees_only_their_own_on_reconnect(
    node: LiveServer, world: LiveWorld
) -> None:
    await world.customer("carol")
    conversation = await world.conversation("carol", "conv-inv-carol")  # queued: only supervisors see it
    async with open_stream(node.url, world.tokens["supervisor"], headers={"Last-Event-ID": "0"}) as stream:
        seen = await stream.until(lambda e: e.event == "conversation.created")
        assert seen[-1].json()["conversation_id"] == conversation
        response = await world.http.patch(
            f"/api/v1/admin/users/{world.ids['supervisor']}",
            json={"permissions": ["chat_user", "access_conversation_entries"]},
            headers={"Authorization": f"Bearer {world.tokens['admin']}"},
        )
        assert response.status_code == 200, response.text
        events = await stream.drain_to_end(timeout=5)
    assert events[-1].event == "stream.reconnect" and events[-1].json()["reason"] == "revalidate"
    async with open_stream(node.url, world.tokens["supervisor"], headers={"Last-Event-ID": "0"}) as again:
        await opened(again)
        await world.send("carol", conversation, "only staff of this conversation may read this", "m-inv-1")
        # A heartbeat-free wait: nothing of carol's conversation may arrive; the stream stays quiet.
        with pytest.raises(TimeoutError):
            await again.next(timeout=1.0)


# -- two nodes: PostgreSQL + Redis -------------------------------------------------------------------
@pytest.fixture
def two_nodes(postgres_url: str, redis_bus_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    import asyncio as aio

    from tests.conftest import empty_postgres

    aio.run(empty_postgres(postgres_url))
    settings = make_settings(
        postgres_url,
        bus_url=redis_bus_url,
        demo=True,
        demo_password=DEMO_PASSWORD,
        principal_cache_seconds=LONG_CACHE,
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
async def test_a_change_on_one_node_applies_on_the_other_through_the_bus(
    two_nodes: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_nodes
    async with LiveWorld(first.url, DEMO_PASSWORD) as world, httpx.AsyncClient(base_url=second.url) as other:
        token = world.tokens["rep2"]
        ok = await other.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text  # cached on the second node, for LONG_CACHE seconds
        async with open_stream(second.url, token) as stream:
            await opened(stream)
            started = time.monotonic()
            response = await world.http.patch(
                f"/api/v1/admin/users/{world.ids['rep2']}",
                json={"disabled": True},
                headers={"Authorization": f"Bearer {world.tokens['admin']}"},
            )
            assert response.status_code == 200, response.text
            events = await stream.drain_to_end(timeout=5)
            ended_after = time.monotonic() - started
        assert events[-1].event == "stream.reconnect" and events[-1].json()["reason"] == "revalidate"
        took = await refused_within(other, token, 5.0)
        # Typically milliseconds; the contract is "within 1 s" (generous here: a loaded CI machine).
        assert ended_after < 5.0 and took < 5.0


# -- the listener: what a lost subscription does -------------------------------------------------------
async def test_a_lost_subscription_drops_every_cached_principal_and_shortens_caching() -> None:
    bus = MemoryBus()
    invalidation = Invalidation(bus, cache_seconds=LONG_CACHE)
    forgotten: list[str | None] = []
    invalidation.on_invalidate(forgotten.append)
    assert invalidation.cache_seconds() == UNHEALTHY_CACHE_SECONDS  # not listening yet
    listener = asyncio.create_task(invalidation.run())
    try:
        await wait_for(lambda: invalidation.healthy)
        assert invalidation.cache_seconds() == LONG_CACHE
        forgotten.clear()
        await invalidation.invalidate_principal("u1")
        await wait_for(lambda: forgotten.count("u1") == 2)  # here at once, then from the bus (idempotent)
        generation = invalidation.generation
        bus.lose_everything()  # what the Redis bus does when its subscription drops
        await wait_for(lambda: None in forgotten)
        assert invalidation.generation > generation  # a load in flight is not cached either
        await wait_for(lambda: invalidation.healthy)  # subscribed again
        assert invalidation.cache_seconds() == LONG_CACHE
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
