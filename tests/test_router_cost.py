"""The router's cost follows changes, not the queue's length (issue 16).

Rows are counted as the database hands them to SQLAlchemy (every Core statement's result, buffered by
the async adapters as it executes), on both backends. With nobody to route to, a tick must not read the
queue: not when nothing happened, not when a customer joins, not when the wallboard's figures are
recomputed. The old router read every waiting conversation on every tick, three times over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from helpline import create_app
from helpline.domain.routing import Router
from helpline.store import Store
from tests.conftest import make_settings
from tests.world import World, build_world

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(database_url, router_enabled=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


class Reads:
    def __init__(self) -> None:
        self.rows = 0
        self.statements = 0


@contextmanager
def reads(store: Store) -> Iterator[Reads]:
    """Rows every SELECT through SQLAlchemy returned while the block ran."""
    seen = Reads()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.statements += 1
            seen.rows += len(cursor._rows)  # the aiosqlite and asyncpg adapters buffer the rows here

    event.listen(store.engine.sync_engine, "after_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "after_cursor_execute", count)


async def queue_up(world: World, first: int, count: int) -> list[str]:
    names = [f"waiting{n}" for n in range(first, first + count)]
    for name in names:
        await world.customer(name)
        world.conversations[name] = await world.open_conversation(name)
    return names


async def positions(world: World, who: str) -> list[int]:
    """Every position ``who`` was told, in order."""
    after, found = "0", []
    while True:
        page = (await world.call(who, "GET", f"/api/v1/events/poll?after={after}&timeout=0")).json()
        if not page["events"]:
            return found
        found += [e["position"] for e in page["events"] if e["type"] == "conversation.routing" and e.get("position")]
        after = page["last_event_id"]


async def told(world: World, who: str) -> int | None:
    found = await positions(world, who)
    return found[-1] if found else None


async def costs(app: FastAPI, world: World, newcomer: int) -> tuple[int, int, int]:
    """Rows read by an idle tick, by a full pass with nothing to do, and by a tick after one arrival."""
    router: Router = app.state.services.router
    store: Store = app.state.services.store
    await router.tick()  # tell the positions
    await router.tick()  # the pass after a change
    with reads(store) as idle:
        for _ in range(3):
            await router.tick()
    router.wake()  # a full pass: route (nobody to offer to) and recompute the wallboard
    with reads(store) as full:
        await router.tick()
    (name,) = await queue_up(world, newcomer, 1)
    with reads(store) as arrival:
        await router.tick()
    waiting = (await world.call("supervisor", "GET", "/api/v1/queues/stats")).json()[0]["waiting"]
    assert await told(world, name) == waiting  # the newcomer was told its place at the tail
    return idle.rows, full.rows, arrival.rows


async def test_idle_and_arrival_ticks_read_the_same_rows_with_5_or_40_waiting(app: FastAPI, world: World) -> None:
    await queue_up(world, 0, 4)  # bob and four more: 5 waiting, nobody online
    small = await costs(app, world, 900)
    await queue_up(world, 100, 34)  # 40 waiting
    large = await costs(app, world, 901)
    assert small[0] == large[0] == 0, f"idle ticks read rows: {small[0]} with 5 waiting, {large[0]} with 40"
    assert small[1:] == large[1:], f"a pass read more with 40 waiting than with 5: {large} against {small}"
    # Everyone was told where they stand, in the order they came.
    for n, name in enumerate([f"waiting{i}" for i in range(4)], start=2):
        assert await told(world, name) == n


async def test_a_departure_moves_only_those_behind_it(app: FastAPI, world: World) -> None:
    names = await queue_up(world, 0, 6)  # bob, then waiting0..5 at positions 2..7
    router: Router = app.state.services.router
    await router.tick()
    before = {name: await told(world, name) for name in names}
    assert list(before.values()) == [2, 3, 4, 5, 6, 7]
    leaving = world.conversations[names[3]]  # waiting3, position 5, gives up
    closed = await world.call(names[3], "POST", f"/api/v1/conversations/{leaving}/close")
    assert closed.status_code == 200, closed.text
    await router.tick()
    after = {name: await positions(world, name) for name in names if name != names[3]}
    # Those ahead of the one who left were not told anything again; those behind moved up by one.
    assert after == {"waiting0": [2], "waiting1": [3], "waiting2": [4], "waiting4": [6, 5], "waiting5": [7, 6]}
    assert await positions(world, "bob") == [1]
