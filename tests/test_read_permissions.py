"""Message text is read with the caller's permissions *now*, on every path (docs/events.md "Visibility").

The text of a message (and of a staff note) is visible only to the conversation's customer and to staff
holding ``access_conversation_entries`` (ACE). Staff without it get the conversation's other events
(created, routing, participants, receipts, closed) but never a ``conversation.message``: not from the
entries (403), not from a replay, not live on the stream, not from the long-poll. Visibility written with
an event (its recipients) is re-checked against the caller's current permissions when it is read, so
removing ACE from a rep makes the text they could read before unreadable, from id 0 on.

What each test shows, and how it could fail: a supervisor without ACE would read every message on the
stream and the poll (supervisors get every event), and a rep who lost ACE would still replay the text
it was a recipient of; both are checked on each read path, against a control that does see the text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from helpline import Settings
from tests.conftest import LiveServer, make_settings
from tests.streams import LiveWorld, open_stream, opened
from tests.world import PASSWORD

DEMO_PASSWORD = "read-permissions-demo"


@pytest.fixture
def live_settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, demo=True, demo_password=DEMO_PASSWORD, heartbeat_seconds=60.0)


@pytest.fixture
async def world(live_server: LiveServer) -> AsyncIterator[LiveWorld]:
    async with LiveWorld(live_server.url, DEMO_PASSWORD) as live:
        created = await live.post(
            "admin",
            "/api/v1/admin/users",
            {"username": "watcher", "password": PASSWORD, "permissions": ["chat_user", "supervisor"]},
        )
        live.ids["watcher"] = created["id"]
        await live.login("watcher", PASSWORD)
        await live.customer("carol")
        yield live


async def replayed_types(world: LiveWorld, who: str) -> list[str]:
    async with open_stream(world.base_url, world.tokens[who], headers={"Last-Event-ID": "0"}) as stream:
        await opened(stream)
        events = await stream.until(lambda e: e.event == "conversation.closed" or e.event == "marker")
    return [e.event for e in events]


async def poll_types(world: LiveWorld, who: str, after: int = 0) -> list[str]:
    response = await world.http.get(
        "/api/v1/events/poll", params={"after": str(after), "timeout": "0"}, headers=auth(world, who)
    )
    assert response.status_code == 200, response.text
    return [e["type"] for e in response.json()["events"]]


def auth(world: LiveWorld, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[who]}"}


async def entries_status(world: LiveWorld, who: str, conversation: str) -> int:
    response = await world.http.get(f"/api/v1/conversations/{conversation}/entries", headers=auth(world, who))
    return response.status_code


async def test_a_supervisor_without_ace_never_reads_message_text(world: LiveWorld) -> None:
    conversation = await world.conversation("carol", "conv-read-1", rep="rep2")
    await world.send("carol", conversation, "my card number is 4111", "m-1")
    await world.send("rep2", conversation, "thanks, noted", "m-2")
    # entries: refused (as before); replay and poll: every event of the conversation but its messages.
    assert await entries_status(world, "watcher", conversation) == 403
    assert await entries_status(world, "supervisor", conversation) == 200  # the demo supervisor holds ACE
    for who, sees_text in (("watcher", False), ("supervisor", True)):
        polled = await poll_types(world, who)
        assert "conversation.created" in polled and "conversation.routing" in polled, polled
        assert ("conversation.message" in polled) is sees_text, (who, polled)
    # live: the message is skipped, the events around it arrive.
    async with (
        open_stream(world.base_url, world.tokens["watcher"]) as watcher,
        open_stream(world.base_url, world.tokens["supervisor"]) as control,
    ):
        await opened(watcher)
        await opened(control)
        await world.send("carol", conversation, "live secret", "m-3")
        await world.post("rep2", f"/api/v1/conversations/{conversation}/close")
        watched = await watcher.until(lambda e: e.event == "conversation.closed")
        controlled = await control.until(lambda e: e.event == "conversation.closed")
    assert "conversation.message" not in [e.event for e in watched]
    assert "live secret" not in "".join(e.data for e in watched)
    assert [e.json()["text"] for e in controlled if e.event == "conversation.message"] == ["live secret"]
    # replay from 0 on a new stream: the same rule.
    assert "conversation.message" not in await replayed_types(world, "watcher")
    assert "conversation.message" in await replayed_types(world, "supervisor")


async def test_a_rep_who_loses_ace_can_no_longer_read_earlier_text(world: LiveWorld) -> None:
    conversation = await world.conversation("carol", "conv-read-2", rep="rep2")
    await world.send("carol", conversation, "before the change", "m-1")
    assert "conversation.message" in await poll_types(world, "rep2")
    assert await entries_status(world, "rep2", conversation) == 200
    async with open_stream(world.base_url, world.tokens["rep2"], headers={"Last-Event-ID": "0"}) as stream:
        await stream.until(lambda e: e.event == "conversation.message")
        response = await world.http.patch(
            f"/api/v1/admin/users/{world.ids['rep2']}",
            json={"permissions": ["chat_user", "chat_rep"]},
            headers=auth(world, "admin"),
        )
        assert response.status_code == 200, response.text
        ended = await stream.drain_to_end(timeout=5)  # revalidate: the stream reconnects with new rights
    assert ended[-1].event == "stream.reconnect"
    assert await entries_status(world, "rep2", conversation) == 403
    assert "conversation.message" not in await poll_types(world, "rep2")  # replayed from 0 by the poll
    async with open_stream(world.base_url, world.tokens["rep2"], headers={"Last-Event-ID": "0"}) as again:
        await opened(again)
        await world.send("carol", conversation, "after the change", "m-2")
        await world.post("carol", f"/api/v1/conversations/{conversation}/close")
        events = await again.until(lambda e: e.event == "conversation.closed")
    assert "conversation.message" not in [e.event for e in events], [e.event for e in events]
    assert "conversation.participant_changed" in [e.event for e in events]  # the rest of its history is there
