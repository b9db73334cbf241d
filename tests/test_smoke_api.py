"""The happy path through the REST API, in process."""

from __future__ import annotations

from tests.world import World


async def test_customer_and_rep_exchange_messages(world: World) -> None:
    conversation = world.conversations["alice"]
    sent = await world.send("alice", conversation, "Hello, my order is late", "m1")
    assert sent.status_code == 201, sent.text
    assert sent.json()["text"] == "Hello, my order is late"
    reply = await world.send("rep", conversation, "Let me check that for you", "r1")
    assert reply.status_code == 201, reply.text
    entries = await world.call("alice", "GET", f"/api/v1/conversations/{conversation}/entries")
    assert entries.status_code == 200
    texts = [e.get("text") for e in entries.json()["entries"] if e["type"] == "conversation.message"]
    assert texts == ["Hello, my order is late", "Let me check that for you"]
    ids = [e["id"] for e in entries.json()["entries"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
