"""Health, readiness and the metrics an operator graphs."""

from __future__ import annotations

import httpx

from tests.world import World

EXPECTED_METRICS = [
    "helpline_open_streams",
    "helpline_events_delivered_total",
    "helpline_events_replayed_total",
    "helpline_stream_resets_total",
    "helpline_heartbeats_total",
    "helpline_slow_consumer_disconnects_total",
    "helpline_poll_requests_total",
    "helpline_streams_refused_total",
]


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_expose_the_stream_counters(world: World, client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/events/poll?timeout=0", headers=world.auth("alice"))
    text = (await client.get("/metrics")).text
    for name in EXPECTED_METRICS:
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert "helpline_poll_requests_total 1.0" in text


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/events" in schema["paths"] and "/api/v1/conversations/{conversation_id}/messages" in schema["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_messages_stored_counts_each_message_once(world: World, client: httpx.AsyncClient) -> None:
    conversation = world.conversations["alice"]
    for _ in range(2):  # the second is a retry: nothing new is stored
        await world.send("alice", conversation, "hello", "counted-once")
    assert "helpline_messages_stored_total 1.0" in (await client.get("/metrics")).text


def series(text: str, name: str) -> float:
    found = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    assert found, f"{name} is missing from /metrics"
    return float(found[0].split()[1])


async def test_metrics_show_the_write_path_and_the_append_lock(world: World, client: httpx.AsyncClient) -> None:
    """The group commit's batches and the append lock's wait and hold: what bounds a cluster (issue 16)."""
    before = (await client.get("/metrics")).text
    for n in range(3):
        sent = await world.send("alice", world.conversations["alice"], f"counted {n}", f"lock-{n}")
        assert sent.status_code == 201, sent.text
    after = (await client.get("/metrics")).text
    assert series(after, "helpline_write_turns") >= series(before, "helpline_write_turns") + 3
    assert series(after, "helpline_write_batches") >= series(before, "helpline_write_batches") + 1
    assert series(after, "helpline_append_lock_hold_seconds") > series(before, "helpline_append_lock_hold_seconds")
    assert series(after, "helpline_append_lock_wait_seconds") >= series(before, "helpline_append_lock_wait_seconds")
