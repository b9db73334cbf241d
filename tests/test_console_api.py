"""The console's server side (issue 11): routing that never strands a customer, pending offers after a
reload, internal notes the customer never gets, canned responses and wrap-up dispositions.

The router's loop is off; tests drive ``Router.tick(now)`` and move the clock by passing ``now``.
"""

from __future__ import annotations

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
from tests.test_routing import events, online, open_offers
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


async def entries(world: World, who: str, conversation: str) -> list[dict[str, Any]]:
    answer = await world.call(who, "GET", f"/api/v1/conversations/{conversation}/entries")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["entries"]
    return found


# -- routing -------------------------------------------------------------------------------------
async def test_a_trainee_without_entries_access_is_never_offered_work(app: FastAPI, world: World) -> None:
    await online(world, "trainee")
    await router(app).tick()
    assert await open_offers(world, "trainee") == []
    await online(world, "rep2")
    await router(app).tick()
    assert [o["offer_conversation_id"] for o in await open_offers(world, "rep2")] == [world.conversations["bob"]]


async def test_transfer_or_assign_to_a_rep_who_cannot_answer_is_a_conflict_naming_the_permission(
    world: World,
) -> None:
    await online(world, "trainee")
    alice = world.conversations["alice"]
    for who, action, body in (
        ("rep", "transfer", {"to_user_id": world.user_ids["trainee"]}),
        ("supervisor", "assign", {"user_id": world.user_ids["trainee"]}),
    ):
        refused = await world.call(who, "POST", f"/api/v1/conversations/{alice}/{action}", body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "conflict"
        assert refused.json()["permission"] == "access_conversation_entries"
        assert "access_conversation_entries" in refused.json()["detail"]
    available = (await world.call("rep", "GET", "/api/v1/reps/available")).json()
    assert world.user_ids["trainee"] not in [r["id"] for r in available]
    after = (await world.call("supervisor", "GET", f"/api/v1/conversations/{alice}")).json()
    assert after["assignee_id"] == world.user_ids["rep"]  # nothing moved


async def test_the_pickers_list_reps_with_load_and_queues_by_name(world: World) -> None:
    await online(world, "rep2", "trainee")
    (picked,) = (await world.call("rep", "GET", "/api/v1/reps/available")).json()
    assert (picked["display_name"], picked["load"], picked["capacity"]) == ("rep2", 0, 3)
    queues = (await world.call("rep", "GET", "/api/v1/queues")).json()
    assert [(q["name"], q["waiting"]) for q in queues] == [("support", 1)]


async def test_a_rep_whose_last_stream_closed_gets_no_offer_until_it_reconnects(app: FastAPI, world: World) -> None:
    await online(world, "rep2")
    await router(app).rep_disconnected(world.user_ids["rep2"])  # what the stream endpoint does on close
    await router(app).tick()
    assert (await world.call("rep2", "GET", "/api/v1/offers")).json() == []
    presence = (await world.call("rep2", "GET", "/api/v1/me/presence")).json()
    assert presence["status"] == "online"  # the grace keeps its status for a reconnect
    await router(app).rep_connected(world.user_ids["rep2"])  # a stream opened again
    await router(app).tick()
    assert len(await open_offers(world, "rep2")) == 1


async def test_an_offer_made_as_the_reps_last_stream_closes_goes_to_someone_else_without_cooldown(
    app: FastAPI, world: World
) -> None:
    await online(world, "rep2")
    await router(app).tick()
    (offer,) = await open_offers(world, "rep2")  # the offer is made...
    await router(app).rep_disconnected(world.user_ids["rep2"])  # ...and the rep's last stream closes
    await router(app).tick()
    # A reload within the grace keeps it (read without polling: a polling rep is a connected one).
    assert len((await world.call("rep2", "GET", "/api/v1/offers")).json()) == 1
    await online(world, "rep")
    grace = app.state.settings.presence_touch_seconds
    await router(app).tick(utcnow() + timedelta(seconds=grace + 1))
    revoked = await events(world, "rep2", "offer.revoked")
    assert [(r["offer_id"], r["reason"]) for r in revoked] == [(offer["offer_id"], "unavailable")]
    assert [o["offer_conversation_id"] for o in await open_offers(world, "rep")] == [world.conversations["bob"]]
    # Not a refusal: once back, rep2 may be offered the same conversation again at once.
    declined = await world.call(
        "rep", "POST", f"/api/v1/offers/{(await open_offers(world, 'rep'))[0]['offer_id']}/decline"
    )
    assert declined.status_code == 200
    await router(app).rep_connected(world.user_ids["rep2"])
    await router(app).tick()
    assert [o["offer_conversation_id"] for o in await open_offers(world, "rep2")] == [world.conversations["bob"]]


async def test_pending_offers_are_listed_with_time_left_customer_and_preview(app: FastAPI, world: World) -> None:
    bob = world.conversations["bob"]
    assert (await world.send("bob", bob, "My parcel never came", "bob-1")).status_code == 201
    await online(world, "rep2")
    await router(app).tick()
    (listed,) = (await world.call("rep2", "GET", "/api/v1/offers")).json()
    (created,) = await events(world, "rep2", "offer.created")
    assert listed["offer_id"] == created["offer_id"] and listed["expires_at"] == created["expires_at"]
    assert listed["offer_conversation_id"] == bob
    assert listed["customer"]["display_name"] == created["customer"]["display_name"] == "bob"
    assert listed["preview"] == created["preview"] == "My parcel never came"
    assert (await world.call("rep", "GET", "/api/v1/offers")).json() == []  # only the caller's own


async def test_supervisors_never_see_the_reps_offers(app: FastAPI, world: World) -> None:
    await online(world, "rep2")
    await router(app).tick()
    assert len(await open_offers(world, "rep2")) == 1
    seen = await events(world, "supervisor")
    assert not [e for e in seen if e["type"].startswith("offer.")]


async def test_the_presence_switch_reads_the_servers_value(world: World) -> None:
    assert (await world.call("rep2", "GET", "/api/v1/me/presence")).json()["status"] == "offline"
    await online(world, "rep2")
    assert (await world.call("rep2", "GET", "/api/v1/me/presence")).json()["status"] == "online"


# -- internal notes --------------------------------------------------------------------------------
async def test_an_internal_note_reaches_staff_and_never_the_customer(world: World) -> None:
    alice = world.conversations["alice"]
    assert (await world.send("alice", alice, "Hello?", "alice-1")).status_code == 201
    path = f"/api/v1/conversations/{alice}/notes"
    note = await world.call("supervisor", "POST", path, {"id": "note-1", "text": "Offer a refund"})
    assert note.status_code == 201, note.text
    assert note.json()["type"] == "conversation.note" and note.json()["author"]["display_name"] == "supervisor"
    again = await world.call("supervisor", "POST", path, {"id": "note-1", "text": "Offer a refund"})
    assert again.status_code == 200 and again.json()["id"] == note.json()["id"]  # a retry, not a duplicate
    # Staff: the rep (its stream's log and the entries page) and supervisors see the note.
    assert [e["text"] for e in await events(world, "rep", "conversation.note")] == ["Offer a refund"]
    assert "conversation.note" in [e["type"] for e in await entries(world, "rep", alice)]
    assert "conversation.note" in [e["type"] for e in await entries(world, "supervisor", alice)]
    # The customer: not in its replay/poll, not on the entries page (forward, backward, by cursor).
    assert all(e["type"] != "conversation.note" for e in await events(world, "alice"))
    for query in ("", "?after=0", "?before=9223372036854775807", f"?after={note.json()['id'] - 1}&limit=1"):
        page = (await world.call("alice", "GET", f"/api/v1/conversations/{alice}/entries{query}")).json()
        assert all(e["type"] != "conversation.note" for e in page["entries"]), query
        assert "Offer a refund" not in str(page)
    # Nor can a customer write one.
    refused = await world.call("alice", "POST", path, {"id": "note-2", "text": "sneaky"})
    assert refused.status_code == 403


async def test_a_note_follows_the_conversation_to_the_next_rep(world: World) -> None:
    alice = world.conversations["alice"]
    await world.call("rep", "POST", f"/api/v1/conversations/{alice}/notes", {"id": "handover", "text": "Angry"})
    await online(world, "rep2")
    moved = await world.call(
        "rep", "POST", f"/api/v1/conversations/{alice}/transfer", {"to_user_id": world.user_ids["rep2"]}
    )
    assert moved.status_code == 202
    assert [e["text"] for e in await entries(world, "rep2", alice) if e["type"] == "conversation.note"] == ["Angry"]


# -- canned responses ------------------------------------------------------------------------------
async def test_canned_responses_shared_by_supervisors_personal_by_their_owner(world: World) -> None:
    base = "/api/v1/canned-responses"
    shared = {"shortcut": "hello", "title": "Greeting", "text": "Hi {customer.name}, I am {rep.name}."}
    refused = await world.call("rep", "POST", base, {**shared, "personal": False})
    assert refused.status_code == 403 and refused.json()["permission"] == "supervisor"
    created = await world.call("supervisor", "POST", base, shared)
    assert created.status_code == 201 and created.json()["owner_id"] is None
    assert (await world.call("supervisor", "POST", base, shared)).status_code == 409  # the shortcut is taken
    mine = await world.call("rep", "POST", base, {"shortcut": "bye", "title": "Bye", "text": "Bye!"})
    assert mine.status_code == 201 and mine.json()["owner_id"] == world.user_ids["rep"]
    assert [c["shortcut"] for c in (await world.call("rep", "GET", base)).json()] == ["bye", "hello"]
    assert [c["shortcut"] for c in (await world.call("rep2", "GET", base)).json()] == ["hello"]
    shared_id, mine_id = created.json()["id"], mine.json()["id"]
    assert (await world.call("rep", "PATCH", f"{base}/{shared_id}", {"title": "x"})).status_code == 403
    assert (await world.call("rep2", "PATCH", f"{base}/{mine_id}", {"title": "x"})).status_code == 404
    edited = await world.call("rep", "PATCH", f"{base}/{mine_id}", {"text": "See you, {customer.name}"})
    assert edited.status_code == 200 and edited.json()["text"] == "See you, {customer.name}"
    assert (await world.call("admin", "DELETE", f"{base}/{shared_id}")).status_code == 204
    assert [c["shortcut"] for c in (await world.call("rep2", "GET", base)).json()] == []
    assert (await world.call("alice", "GET", base)).status_code == 403


# -- wrap-up -----------------------------------------------------------------------------------------
async def test_closing_with_a_disposition_from_the_queue_stores_it_on_the_close_entry(world: World) -> None:
    alice = world.conversations["alice"]
    configured = await world.call(
        "admin", "PATCH", f"/api/v1/admin/queues/{world.queue_id}", {"dispositions": ["Resolved", "Refund"]}
    )
    assert configured.status_code == 200 and configured.json()["dispositions"] == ["Resolved", "Refund"]
    (queue,) = (await world.call("rep", "GET", "/api/v1/queues")).json()
    assert queue["dispositions"] == ["Resolved", "Refund"]
    unknown = await world.call("rep", "POST", f"/api/v1/conversations/{alice}/close", {"disposition": "Nope"})
    assert unknown.status_code == 422 and "Resolved" in unknown.json()["detail"]
    closed = await world.call("rep", "POST", f"/api/v1/conversations/{alice}/close", {"disposition": "Refund"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    (entry,) = [e for e in await entries(world, "rep", alice) if e["type"] == "conversation.closed"]
    assert entry["disposition"] == "Refund"
    plain = await world.call("bob", "POST", f"/api/v1/conversations/{world.conversations['bob']}/close")
    assert plain.status_code == 200  # a customer (and anyone) may still close without one
