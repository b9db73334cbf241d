"""Retries that race each other across two server nodes sharing one database never duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from helpline import create_app
from tests.conftest import make_settings
from tests.world import World, build_world

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def two_nodes(database_url: str) -> AsyncIterator[tuple[World, httpx.AsyncClient]]:
    first, second = create_app(make_settings(database_url)), create_app(make_settings(database_url))
    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://node1") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://node2") as two,
    ):
        yield await build_world(first, one), two


async def test_the_same_message_sent_to_two_nodes_at_once_is_stored_once(
    two_nodes: tuple[World, httpx.AsyncClient],
) -> None:
    world, other_node = two_nodes
    conversation = world.conversations["alice"]
    path = f"/api/v1/conversations/{conversation}/messages"
    body = {"id": "retry-me", "text": "sent twice, stored once"}
    responses = await asyncio.gather(
        *((world.client if n % 2 else other_node).post(path, json=body, headers=world.auth("alice")) for n in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    entries = await world.call("alice", "GET", f"/api/v1/conversations/{conversation}/entries")
    assert [e["message_id"] for e in entries.json()["entries"] if e["type"] == "conversation.message"] == ["retry-me"]


async def test_the_same_conversation_opened_on_two_nodes_at_once_is_created_once(
    two_nodes: tuple[World, httpx.AsyncClient],
) -> None:
    world, other_node = two_nodes
    responses = await asyncio.gather(
        *(
            (world.client if n % 2 else other_node).post(
                "/api/v1/conversations", json={"id": "conv-race"}, headers=world.auth("bob")
            )
            for n in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = await world.call("bob", "GET", "/api/v1/conversations")
    expected = [world.conversations["bob"], responses[0].json()["id"]]
    assert sorted(c["id"] for c in listed.json()["conversations"]) == sorted(expected)
