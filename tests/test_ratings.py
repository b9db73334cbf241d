"""Satisfaction ratings (issue 12): after close, the customer rates 1-5; rep and supervisor see the entry;
queue stats and /metrics average them. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from helpline import create_app
from tests.conftest import make_settings
from tests.world import World


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(database_url, router_enabled=False))
    async with application.router.lifespan_context(application):
        yield application


async def test_a_customer_rates_a_closed_chat_once_and_staff_see_it(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    early = await world.call("alice", "POST", f"/api/v1/conversations/{conversation}/rating", {"score": 5})
    assert early.status_code == 409  # still open
    await world.call("rep", "POST", f"/api/v1/conversations/{conversation}/close", {})
    path = f"/api/v1/conversations/{conversation}/rating"
    assert (await world.call("rep", "POST", path, {"score": 5})).status_code == 403  # staff do not rate
    assert (await world.call("bob", "POST", path, {"score": 1})).status_code == 404
    for bad in ({"score": 0}, {"score": 6}, {"score": "5"}, {"score": 4, "comment": "x" * 2001}, {}):
        assert (await world.call("alice", "POST", path, bad)).status_code == 422, bad
    rated = await world.call("alice", "POST", path, {"score": 4, "comment": "Quick and kind"})
    assert rated.status_code == 201, rated.text
    entry = rated.json()
    assert entry["type"] == "conversation.rated" and entry["score"] == 4 and entry["comment"] == "Quick and kind"
    assert (await world.call("alice", "POST", path, {"score": 1})).status_code == 409  # once
    for who in ("rep", "supervisor", "alice"):
        entries = (await world.call(who, "GET", f"/api/v1/conversations/{conversation}/entries")).json()["entries"]
        assert [e["score"] for e in entries if e["type"] == "conversation.rated"] == [4], who


async def test_the_average_is_in_queue_stats_and_metrics(app: FastAPI, world: World) -> None:
    stats = (await world.call("supervisor", "GET", "/api/v1/queues/stats")).json()
    assert stats[0]["rating_average"] is None and stats[0]["ratings"] == 0
    for name, score in (("alice", 5), ("bob", 2)):
        conversation = world.conversations[name]
        await world.call(name, "POST", f"/api/v1/conversations/{conversation}/close", {})
        assert (
            await world.call(name, "POST", f"/api/v1/conversations/{conversation}/rating", {"score": score})
        ).status_code == 201
    stats = (await world.call("supervisor", "GET", "/api/v1/queues/stats")).json()
    assert stats[0]["rating_average"] == 3.5 and stats[0]["ratings"] == 2
    metrics = (await world.client.get("/metrics")).text
    assert 'helpline_satisfaction_average{queue="support"} 3.5' in metrics
    assert 'helpline_satisfaction_ratings{queue="support"} 2.0' in metrics
    assert 'helpline_ratings_total{score="5"} 1.0' in metrics
