"""The console's promises on real sockets (issue 11): an internal note never enters a customer's
stream, live or replayed, and a rep's closed stream pauses its routing until a stream opens again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, make_settings
from tests.streams import LiveWorld, open_stream, opened

pytestmark = pytest.mark.timeout(60)
DEMO_PASSWORD = "demo-password-123"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}", demo=True, demo_password=DEMO_PASSWORD)
    live = LiveServer(settings).start()
    yield live
    live.stop()


async def test_a_note_is_live_for_staff_and_never_on_the_customers_stream_or_its_replay(server: LiveServer) -> None:
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        await world.customer("dana")
        conversation = await world.conversation("dana", "conv-dana", rep="rep")
        async with (
            open_stream(server.url, world.tokens["dana"]) as customer,
            open_stream(server.url, world.tokens["rep"]) as rep,
        ):
            await opened(customer)
            await opened(rep)
            note = await world.post(
                "supervisor", f"/api/v1/conversations/{conversation}/notes", {"id": "n1", "text": "whisper: VIP"}
            )
            after = await world.send("rep", conversation, "How can I help?", "m1")
            seen_by_rep = await rep.until(lambda e: e.event == "conversation.message")
            assert [e.json()["id"] for e in seen_by_rep if e.event == "conversation.note"] == [note["id"]]
            seen_by_customer = await customer.until(lambda e: e.event == "conversation.message")
            assert seen_by_customer[-1].json()["id"] == after["id"]
            assert all(e.event != "conversation.note" for e in seen_by_customer)
            assert b"whisper" not in bytes(customer.raw)
        # A reconnect from before the note replays the message, never the note.
        async with open_stream(
            server.url, world.tokens["dana"], headers={"Last-Event-ID": str(note["id"] - 1)}
        ) as again:
            replayed = await again.until(lambda e: e.event == "conversation.message")
            assert [e.json()["id"] for e in replayed if e.event.startswith("conversation.")] == [after["id"]]
            assert b"whisper" not in bytes(again.raw)


async def test_a_reps_closed_stream_pauses_its_routing_until_one_opens_again(server: LiveServer) -> None:
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        store = server.app.state.services.store
        user_id = world.ids["rep"]

        async def closed() -> bool:
            async with store.read() as s:
                (load,) = await s.rep_loads(user_id=user_id)
                return load.stream_closed

        async def eventually(expected: bool) -> None:
            deadline = asyncio.get_running_loop().time() + 10
            while await closed() != expected:
                assert asyncio.get_running_loop().time() < deadline, f"stream_closed never became {expected}"
                await asyncio.sleep(0.05)

        async with open_stream(server.url, world.tokens["rep"]) as stream:
            await opened(stream)
            await eventually(False)
        await eventually(True)  # the last stream went: no new offers
        async with open_stream(server.url, world.tokens["rep"]) as stream:
            await opened(stream)
            await eventually(False)  # back at once
