"""Routing and the rep's workday (issue 4): offers, capacity, presence, transfers, hours, supervision.

The router's background loop is off here; each test drives ``Router.tick(now)`` itself and moves the
clock by passing ``now``, so nothing waits on wall-clock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpline import create_app
from helpline.domain.routing import Router
from helpline.records import utcnow
from tests.conftest import make_settings
from tests.world import World, build_world

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(sqlite_url, router_enabled=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    built = await build_world(app, client)
    for rep in ("rep", "rep2", "trainee"):
        await built.call(
            "admin", "PATCH", f"/api/v1/admin/users/{built.user_ids[rep]}", {"queue_ids": [built.queue_id]}
        )
    return built


def router(app: FastAPI) -> Router:
    found: Router = app.state.services.router
    return found


async def online(world: World, *reps: str) -> None:
    for rep in reps:
        response = await world.call(rep, "PUT", "/api/v1/me/presence", {"status": "online"})
        assert response.status_code == 200, response.text


async def events(world: World, who: str, event_type: str | None = None) -> list[dict[str, Any]]:
    """Everything ``who`` may see in the log (long-poll from the start), optionally of one type."""
    found: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = (await world.call(who, "GET", f"/api/v1/events/poll?after={after}&timeout=0")).json()
        if not page["events"]:
            return [e for e in found if event_type is None or e["type"] == event_type]
        found += page["events"]
        after = page["last_event_id"]


async def open_offers(world: World, rep: str) -> list[dict[str, Any]]:
    created = await events(world, rep, "offer.created")
    closed = {e["offer_id"] for e in await events(world, rep, "offer.revoked")}
    decided = set()
    for offer in created:
        answer = await world.call(rep, "GET", f"/api/v1/conversations/{offer['offer_conversation_id']}")
        if answer.status_code == 200 and answer.json()["assignee_id"] == world.user_ids[rep]:
            decided.add(offer["offer_id"])
    return [o for o in created if o["offer_id"] not in closed | decided]


async def accept(world: World, rep: str, offer_id: str) -> httpx.Response:
    return await world.call(rep, "POST", f"/api/v1/offers/{offer_id}/accept")


async def test_a_queued_conversation_is_offered_to_the_rep_with_most_free_capacity(app: FastAPI, world: World) -> None:
    await online(world, "rep", "rep2")  # rep already has alice's conversation: rep2 has more room
    await router(app).tick()
    assert [o["offer_conversation_id"] for o in await open_offers(world, "rep2")] == [world.conversations["bob"]]
    assert await open_offers(world, "rep") == []


async def test_ties_go_to_the_rep_longest_without_new_work(app: FastAPI, world: World) -> None:
    await world.call("supervisor", "POST", f"/api/v1/conversations/{world.conversations['alice']}/close")
    await world.assign(await world.open_conversation("alice"), "rep2")
    await world.call("admin", "PATCH", f"/api/v1/admin/users/{world.user_ids['rep']}", {"max_concurrent": 2})
    # rep: 0 active of 2, idle since its first assignment; rep2: 1 active of 3, assigned just now. Equal room
    # (2 free each), so the one that got work longest ago wins.
    await online(world, "rep", "rep2")
    await router(app).tick()
    assert len(await open_offers(world, "rep")) == 1 and await open_offers(world, "rep2") == []


async def test_accepting_makes_the_rep_assignee_and_tells_the_customer_who_joined(app: FastAPI, world: World) -> None:
    await online(world, "rep2")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep2")
    accepted = await accept(world, "rep2", offer["offer_id"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["assignee_id"] == world.user_ids["rep2"] and accepted.json()["status"] == "assigned"
    routing = await events(world, "bob", "conversation.routing")
    assert routing[-1]["state"] == "assigned" and routing[-1]["assignee"]["display_name"] == "rep2"
    joined = await events(world, "bob", "conversation.participant_changed")
    assert joined[-1]["action"] == "joined"
    again = await accept(world, "rep2", offer["offer_id"])
    assert again.status_code == 409


async def test_a_declined_offer_goes_to_the_next_rep_and_not_back_right_away(app: FastAPI, world: World) -> None:
    await online(world, "rep2", "rep")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep2")
    declined = await world.call("rep2", "POST", f"/api/v1/offers/{offer['offer_id']}/decline")
    assert declined.status_code == 200
    assert (await events(world, "rep2", "offer.revoked"))[-1]["reason"] == "declined"
    await router(app).tick()
    assert [o["offer_conversation_id"] for o in await open_offers(world, "rep")] == [world.conversations["bob"]]
    assert await open_offers(world, "rep2") == []


async def test_an_unanswered_offer_is_revoked_after_the_timeout_and_tried_elsewhere(app: FastAPI, world: World) -> None:
    await online(world, "rep2", "rep")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep2")
    await router(app).tick(utcnow() + timedelta(seconds=31))  # the 30 s default has passed
    revoked = await events(world, "rep2", "offer.revoked")
    assert [(r["offer_id"], r["reason"]) for r in revoked] == [(offer["offer_id"], "timeout")]
    assert (await accept(world, "rep2", offer["offer_id"])).status_code == 409
    assert len(await open_offers(world, "rep")) == 1


async def test_no_rep_is_offered_work_beyond_capacity(app: FastAPI, world: World) -> None:
    await world.call("admin", "PATCH", f"/api/v1/admin/users/{world.user_ids['rep']}", {"max_concurrent": 1})
    await online(world, "rep")  # rep is full with alice's conversation
    await router(app).tick()
    assert await open_offers(world, "rep") == []
    stats = (await world.call("supervisor", "GET", "/api/v1/queues/stats")).json()
    (support,) = stats
    assert support["length"] == 1 and support["reps_online"] == 1


async def test_customers_in_the_queue_are_told_their_position_as_it_moves(app: FastAPI, world: World) -> None:
    await world.customer("carol")
    await world.customer("dave")
    carol = await world.open_conversation("carol")
    await world.open_conversation("dave")
    await router(app).tick()
    assert (await events(world, "dave", "conversation.routing"))[-1]["position"] == 3
    assert (await events(world, "carol", "conversation.routing"))[-1]["position"] == 2
    await world.assign(world.conversations["bob"], "rep2")
    await router(app).tick()
    dave = (await events(world, "dave", "conversation.routing"))[-1]
    # No rep is online in this world: no made-up estimate (issue 12), and the event says why.
    assert dave["position"] == 2 and dave["estimated_wait_seconds"] is None and dave["reps_online"] == 0
    assert (await events(world, "carol", "conversation.routing"))[-1]["position"] == 1
    assert carol


async def test_transfers_go_only_to_online_reps_with_room(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    refused = await world.call(
        "rep", "POST", f"/api/v1/conversations/{conversation}/transfer", {"to_user_id": world.user_ids["rep2"]}
    )
    assert refused.status_code == 409  # rep2 is offline
    await online(world, "rep2")
    available = (await world.call("rep", "GET", "/api/v1/reps/available")).json()
    assert [r["id"] for r in available] == [world.user_ids["rep2"]]
    moved = await world.call(
        "rep", "POST", f"/api/v1/conversations/{conversation}/transfer", {"to_user_id": world.user_ids["rep2"]}
    )
    assert moved.status_code == 202 and moved.json()["assignee_id"] == world.user_ids["rep2"]
    back = await world.call(
        "rep2", "POST", f"/api/v1/conversations/{conversation}/transfer", {"to_queue_id": world.queue_id}
    )
    assert back.status_code == 202 and back.json()["status"] == "queued"
    history = (await world.call("supervisor", "GET", f"/api/v1/conversations/{conversation}/entries")).json()
    states = [e["state"] for e in history["entries"] if e["type"] == "conversation.routing"]
    assert states[-2:] == ["transferred", "transferred"]


async def test_a_rep_whose_streams_are_gone_goes_offline_and_comes_back_on_reconnect(
    app: FastAPI, world: World
) -> None:
    await online(world, "rep2")
    settings = app.state.settings
    await router(app).tick(utcnow() + timedelta(seconds=settings.presence_grace_seconds + 1))
    changes = await events(world, "supervisor", "presence.changed")
    assert (changes[-1]["user_id"], changes[-1]["status"]) == (world.user_ids["rep2"], "offline")
    await router(app).tick()
    assert await open_offers(world, "rep2") == []  # offline reps get no work
    await router(app).rep_connected(world.user_ids["rep2"])
    restored = (await events(world, "supervisor", "presence.changed"))[-1]
    assert (restored["status"], restored["reason"]) == ("online", "reconnected")


async def test_silent_customers_are_warned_then_their_conversation_closes(app: FastAPI, world: World) -> None:
    settings = app.state.settings
    later = utcnow() + timedelta(seconds=settings.inactivity_warning_seconds + 1)
    await router(app).tick(later)
    warning = (await events(world, "alice", "conversation.message"))[-1]
    assert warning["automatic"] == "inactivity-warning" and warning["author"]["kind"] == "system"
    await router(app).tick(later + timedelta(seconds=settings.inactivity_close_seconds + 1))
    closed = (await events(world, "alice", "conversation.closed"))[-1]
    assert closed["reason"] == "inactivity"
    bob = (await world.call("bob", "GET", f"/api/v1/conversations/{world.conversations['bob']}")).json()
    assert bob["status"] == "queued"  # waiting in the queue is not inactivity


async def test_outside_business_hours_a_conversation_gets_an_automatic_reply_and_is_refused(
    app: FastAPI, world: World
) -> None:
    closed_all_week = {"timezone": "Europe/Paris", "weekly": {}, "outside": "refuse", "auto_reply": "We are closed."}
    patched = await world.call(
        "admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"business_hours": closed_all_week}
    )
    assert patched.status_code == 200, patched.text
    await world.customer("night-owl")
    conversation = await world.call("night-owl", "POST", "/api/v1/conversations", {})
    assert conversation.json()["status"] == "closed"
    texts = [e["text"] for e in await events(world, "night-owl", "conversation.message")]
    assert texts == ["We are closed."]
    routing = await events(world, "night-owl", "conversation.routing")
    assert routing[-1]["state"] == "failed" and routing[-1]["reason"] == "outside_business_hours"


async def test_outside_business_hours_a_conversation_can_still_queue(app: FastAPI, world: World) -> None:
    hours = {"timezone": "UTC", "weekly": {}, "outside": "queue"}
    await world.call("admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"business_hours": hours})
    await world.customer("early-bird")
    conversation = await world.call("early-bird", "POST", "/api/v1/conversations", {})
    assert conversation.json()["status"] == "queued"
    (reply,) = await events(world, "early-bird", "conversation.message")
    assert reply["automatic"] == "outside-hours"


async def test_bad_business_hours_are_refused(world: World) -> None:
    for hours in (
        {"timezone": "Mars/Olympus", "weekly": {}},
        {"timezone": "UTC", "weekly": {"mon": [["18:00", "09:00"]]}},
    ):
        answer = await world.call(
            "admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"business_hours": hours}
        )
        assert answer.status_code == 422


async def test_the_deployment_greeting_is_sent_when_a_rep_joins(app: FastAPI, world: World) -> None:
    await world.call(
        "admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"greeting": "Hi, {rep} here!"}
    )
    await world.assign(world.conversations["bob"], "rep2")
    greeting = (await events(world, "bob", "conversation.message"))[-1]
    assert greeting["text"] == "Hi, rep2 here!" and greeting["automatic"] == "greeting"


async def test_supervisors_see_queue_stats_live(app: FastAPI, world: World) -> None:
    await online(world, "rep")
    stats = (await world.call("supervisor", "GET", "/api/v1/queues/stats")).json()
    (support,) = stats
    assert support["name"] == "support" and support["length"] == 1 and support["longest_wait_seconds"] >= 0
    assert {r["id"]: r["active"] for r in support["reps"]}[world.user_ids["rep"]] == 1
    waiting = asyncio.create_task(world.call("supervisor", "GET", "/api/v1/events/poll?timeout=5&after=999999999"))
    await asyncio.sleep(0)
    await router(app).publish_stats()
    assert waiting  # queue.stats is ephemeral: proven on the stream by the scenario test
    waiting.cancel()


def scraped(text: str, series: str) -> float:
    """The value of one series in a /metrics scrape (fails when it is missing)."""
    (line,) = [line for line in text.splitlines() if line.startswith(series + " ")]
    return float(line.split()[-1])


async def test_metrics_show_the_contact_center(app: FastAPI, world: World, client: httpx.AsyncClient) -> None:
    """A scripted scene (an offer declined, one expired, one accepted, a wrap-up) and the scrape after it."""
    await world.call("admin", "PATCH", f"/api/v1/admin/queues/{world.queue_id}", {"dispositions": ["Resolved"]})
    await online(world, "rep2")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep2")
    assert (await world.call("rep2", "POST", f"/api/v1/offers/{offer['offer_id']}/decline")).status_code == 200
    await online(world, "rep")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep")
    await router(app).tick(utcnow() + timedelta(seconds=31))  # rep lets it time out; bob keeps waiting
    assert await open_offers(world, "rep") == []
    closed = await world.call(
        "rep", "POST", f"/api/v1/conversations/{world.conversations['alice']}/close", {"disposition": "Resolved"}
    )
    assert closed.status_code == 200, closed.text
    await world.open_conversation("alice")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep") + await open_offers(world, "rep2")
    taker = "rep" if offer["rep_id"] == world.user_ids["rep"] else "rep2"
    assert (await accept(world, taker, offer["offer_id"])).status_code == 200

    text = (await client.get("/metrics")).text
    assert scraped(text, 'helpline_offers_total{outcome="created"}') == 3
    assert scraped(text, 'helpline_offers_total{outcome="declined"}') == 1
    assert scraped(text, 'helpline_offers_total{outcome="expired"}') == 1
    assert scraped(text, 'helpline_offers_total{outcome="accepted"}') == 1
    assert scraped(text, 'helpline_conversations_closed_total{disposition="Resolved"}') == 1
    assert scraped(text, "helpline_handle_time_seconds_count") == 1
    assert scraped(text, 'helpline_handle_time_seconds_bucket{le="+Inf"}') == 1
    assert scraped(text, 'helpline_queue_waiting{queue="support"}') == 1  # bob
    assert 0 <= scraped(text, 'helpline_queue_longest_wait_seconds{queue="support"}') < 600
    assert scraped(text, 'helpline_reps{presence="online"}') == 2
    assert scraped(text, 'helpline_reps{presence="offline"}') == 1  # the trainee
