"""A busy afternoon (issue 4's scenario): many customers, a few reps, the real router and real streams.

Reps are agents on their own event streams: offered work, each accepts, declines or ignores (so offers
time out), replies, then closes or sends the conversation back to the queue. At the end, from the log:
every conversation was closed, never had two reps at once, no rep ever held more than its capacity,
and every customer was told its queue position while it waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpline.client import AsyncClient, HTTPStatusError
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.timeout(150)
PASSWORD = "demo-password-123"
REPS, CUSTOMERS, CAPACITY = 3, 12, 2


async def rep_agent(server: str, username: str, seed: int, transferred: set[str], queue_id: str) -> None:
    rng = random.Random(seed)
    async with AsyncClient(server) as me:
        await me.login(username, PASSWORD)
        await me.set_presence("online")
        async with contextlib.aclosing(me.events()) as events:
            async for event in events:
                if event.type != "offer.created":
                    continue
                choice = rng.random()
                if choice < 0.2:
                    continue  # ignore it: the offer times out and goes to someone else
                offer_id, conversation = event.data["offer_id"], event.data["offer_conversation_id"]
                if choice < 0.4:
                    with contextlib.suppress(HTTPStatusError):
                        await me.decline_offer(offer_id)
                    continue
                try:
                    await me.accept_offer(offer_id)
                except HTTPStatusError:
                    continue  # revoked or expired meanwhile: fine, it is someone else's now
                asyncio.get_running_loop().create_task(work(me, conversation, rng, transferred, queue_id))


async def work(me: AsyncClient, conversation: str, rng: random.Random, transferred: set[str], queue_id: str) -> None:
    await me.send_message(conversation, "Hello! Looking into it.")
    await asyncio.sleep(rng.uniform(0.05, 0.3))  # the rep at work, not a synchronisation
    if conversation not in transferred and rng.random() < 0.3:
        transferred.add(conversation)
        await me.transfer(conversation, to_queue_id=queue_id)
    else:
        await me.close_conversation(conversation)


async def log_of(http: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = (
            await http.get(f"/api/v1/events/poll?after={after}&timeout=0", headers={"Authorization": f"Bearer {token}"})
        ).json()
        if not page["events"]:
            return found
        found += page["events"]
        after = page["last_event_id"]


async def test_a_busy_queue_ends_with_every_conversation_handled_once(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'scenario.db'}",
        demo=True,
        demo_password=PASSWORD,
        offer_timeout_seconds=1.0,
        refusal_cooldown_seconds=1.0,
        router_tick_seconds=0.2,
        max_streams_per_identity=10,
    )
    server = LiveServer(settings).start()
    agents: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            admin = (await http.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})).json()
            staff = {"Authorization": f"Bearer {admin['access_token']}"}
            queue_id = (await http.get("/api/v1/admin/queues", headers=staff)).json()[0]["id"]
            for n in range(REPS):
                created = await http.post(
                    "/api/v1/admin/users",
                    headers=staff,
                    json={
                        "username": f"agent{n}",
                        "password": PASSWORD,
                        "max_concurrent": CAPACITY,
                        "queue_ids": [queue_id],
                        "permissions": ["chat_user", "chat_rep", "access_conversation_entries"],
                    },
                )
                assert created.status_code == 201, created.text
            transferred: set[str] = set()
            agents = [
                asyncio.create_task(
                    rep_agent(server.url, f"agent{n}", seed=n, transferred=transferred, queue_id=queue_id)
                )
                for n in range(REPS)
            ]
            customers: dict[str, str] = {}
            for n in range(CUSTOMERS):
                session = (await http.post("/api/v1/deployments/demo/sessions", json={"display_name": f"c{n}"})).json()
                token = session["access_token"]
                opened = await http.post("/api/v1/conversations", json={}, headers={"Authorization": f"Bearer {token}"})
                customers[opened.json()["id"]] = token

            supervisor = (
                await http.post("/api/v1/auth/login", json={"username": "supervisor", "password": PASSWORD})
            ).json()
            watch = {"Authorization": f"Bearer {supervisor['access_token']}"}
            deadline = asyncio.get_running_loop().time() + 100
            while True:
                listed = (await http.get("/api/v1/conversations?limit=100", headers=watch)).json()["conversations"]
                if len(listed) == CUSTOMERS and all(c["status"] == "closed" for c in listed):
                    break
                assert asyncio.get_running_loop().time() < deadline, [c["status"] for c in listed]
                await asyncio.sleep(0.2)
            log = await log_of(http, supervisor["access_token"])
            customer_logs = {cid: await log_of(http, token) for cid, token in customers.items()}
            # Offers reach the offered rep alone (supervisors never see them, issue 11): read each agent's.
            offer_logs = []
            for n in range(REPS):
                agent = (
                    await http.post("/api/v1/auth/login", json={"username": f"agent{n}", "password": PASSWORD})
                ).json()
                offer_logs += await log_of(http, agent["access_token"])
    finally:
        for agent in agents:
            agent.cancel()
        await asyncio.gather(*agents, return_exceptions=True)
        server.stop()

    reps_in: dict[str, set[str]] = defaultdict(set)  # conversation → reps holding it now
    held: dict[str, int] = defaultdict(int)  # rep → conversations held now
    for event in log:  # the log in id order: replay it and check the invariants at every step
        conversation = event.get("conversation_id")
        if event["type"] == "conversation.participant_changed":
            who = event["participant"]["id"]
            if event["action"] == "joined":
                reps_in[conversation].add(who)
                held[who] += 1
                assert len(reps_in[conversation]) == 1, f"two reps in {conversation}"
                assert held[who] <= CAPACITY, f"{who} over capacity"
            else:
                reps_in[conversation].discard(who)
                held[who] -= 1
        elif event["type"] == "conversation.closed":
            for who in reps_in.pop(conversation, set()):
                held[who] -= 1
    assert any(e["type"] == "conversation.routing" and e["state"] == "transferred" for e in log)
    closed = {e["conversation_id"] for e in log if e["type"] == "conversation.closed"}
    assert closed == set(customers)
    for conversation, events in customer_logs.items():
        positions = [e for e in events if e["type"] == "conversation.routing" and e.get("position")]
        assert positions, f"{conversation}: the customer was never told its position"
        assert all(e["conversation_id"] == conversation for e in events), "a customer saw another's events"
    assert not any(e["type"].startswith("offer.") for e in log), "a supervisor saw the reps' offers"
    revoked = [e for e in offer_logs if e["type"] == "offer.revoked"]
    assert {"timeout", "declined"} <= {e["reason"] for e in revoked}, "the scenario should exercise both"
