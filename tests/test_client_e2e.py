"""The Python client against a real server over real sockets: nothing lost across reconnects."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpline.client import AsyncClient, Client, HTTPStatusError
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.timeout(90)
PASSWORD = "demo-password-123"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # Streams live about one second, so every test crosses several server-initiated reconnects.
    settings = make_settings(
        f"sqlite:///{tmp_path / 'c.db'}", demo=True, demo_password=PASSWORD, stream_lifetime_seconds=1.0
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


def test_sync_client_sends_idempotently_and_receives_across_reconnects(server: LiveServer) -> None:
    with Client(server.url) as customer, Client(server.url) as rep, Client(server.url) as supervisor:
        customer.start_customer_session("demo", display_name="Ada")
        rep_id = rep.login("rep", PASSWORD)["id"]
        supervisor.login("supervisor", PASSWORD)
        conversation = customer.create_conversation(id="c-sync")["id"]
        supervisor.assign(conversation, rep_id)
        sent = [f"m{n}" for n in range(30)]
        received: list[str] = []
        ids: list[int] = []

        def write() -> None:
            for n, message_id in enumerate(sent):
                (customer if n % 2 else rep).send_message(conversation, f"text {n}", id=message_id)
                if n % 10 == 9:
                    threading.Event().wait(0.5)  # spread the writes across several stream lifetimes

        writer = threading.Thread(target=write)
        writer.start()
        for event in customer.events():
            if event.id is not None:
                ids.append(event.id)
            if event.type == "conversation.message":
                received.append(event.data["message_id"])
            if len(received) == len(sent):
                break
        writer.join()
        assert received == sent and ids == sorted(set(ids))
        retried = rep.send_message(conversation, "text 0, sent again", id="m0")  # a retry: no duplicate
        assert retried["text"] == "text 0"
        history = customer.get_entries(conversation)["entries"]
        assert [e["message_id"] for e in history if e["type"] == "conversation.message"] == sent


async def test_async_client_resumes_from_a_given_id(server: LiveServer) -> None:
    async with AsyncClient(server.url) as customer, AsyncClient(server.url) as supervisor:
        session = await customer.start_customer_session("demo", display_name="Bea")
        await supervisor.login("supervisor", PASSWORD)
        conversation = (await customer.create_conversation(id="c-async"))["id"]
        for n in range(5):
            await customer.send_message(conversation, f"before {n}", id=f"b{n}")
        received: list[str] = []
        async with contextlib.aclosing(customer.events(last_event_id=int(session["last_event_id"]))) as events:
            async for event in events:
                if event.type == "conversation.message":
                    received.append(event.data["message_id"])
                if len(received) == 5:
                    break
        assert received == [f"b{n}" for n in range(5)]
        with pytest.raises(HTTPStatusError) as refused:
            await supervisor.send_message(conversation, "supervisors monitor read-only")
        assert refused.value.status == 403 and refused.value.code == "permission_denied"
