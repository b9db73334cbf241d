"""Routing under concurrency: two server nodes on one database, accepts racing each other.

Never two reps assigned the same conversation, never a rep over capacity (issue 4), on SQLite and on
PostgreSQL; the store's append lock plus re-checks inside each transaction make that hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from helpline import create_app
from helpline.records import new_id, utcnow
from tests.conftest import make_settings
from tests.world import World, build_world

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def nodes(database_url: str) -> AsyncIterator[tuple[World, httpx.AsyncClient, object]]:
    first = create_app(make_settings(database_url, router_enabled=False))
    second = create_app(make_settings(database_url, router_enabled=False))
    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://node1") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://node2") as two,
    ):
        yield await build_world(first, one), two, first.state.services.store


async def offer(store: object, conversation_id: str, user_id: str) -> str:
    """An open offer, written straight to the store: as if routers had raced (they cannot, but accepts must
    stay correct even if they did)."""
    offer_id = new_id("ofr")
    async with store.write() as s:  # type: ignore[attr-defined]
        now = utcnow()
        await s.insert_offer(
            id=offer_id,
            conversation_id=conversation_id,
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=30),
        )
    return offer_id


async def test_two_reps_accepting_the_same_conversation_on_two_nodes_one_wins(
    nodes: tuple[World, httpx.AsyncClient, object],
) -> None:
    world, other_node, store = nodes
    bob = world.conversations["bob"]
    for attempt in range(5):
        conversation = bob if attempt == 0 else await world.open_conversation("bob")
        offers = {rep: await offer(store, conversation, world.user_ids[rep]) for rep in ("rep", "rep2")}
        answers = await asyncio.gather(
            world.client.post(f"/api/v1/offers/{offers['rep']}/accept", headers=world.auth("rep")),
            other_node.post(f"/api/v1/offers/{offers['rep2']}/accept", headers=world.auth("rep2")),
        )
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        final = (await world.call("supervisor", "GET", f"/api/v1/conversations/{conversation}")).json()
        winner = next(a for a in answers if a.status_code == 200).json()["assignee_id"]
        assert final["assignee_id"] == winner
        assert [p["id"] for p in final["participants"] if p["kind"] == "rep" and p["left_at"] is None] == [winner]


async def test_a_rep_accepting_many_offers_at_once_never_exceeds_capacity(
    nodes: tuple[World, httpx.AsyncClient, object],
) -> None:
    world, other_node, store = nodes
    await world.call("admin", "PATCH", f"/api/v1/admin/users/{world.user_ids['rep2']}", {"max_concurrent": 2})
    conversations = [await world.open_conversation("bob") for _ in range(6)]
    offers = [await offer(store, c, world.user_ids["rep2"]) for c in conversations]
    answers = await asyncio.gather(
        *(
            (world.client if n % 2 else other_node).post(f"/api/v1/offers/{o}/accept", headers=world.auth("rep2"))
            for n, o in enumerate(offers)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 409, 409, 409, 409]
    mine = (await world.call("rep2", "GET", "/api/v1/conversations?status=assigned")).json()["conversations"]
    assert len(mine) == 2
