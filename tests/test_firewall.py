"""Streams behind a firewall that silently drops flows idle for 10 s (tests/proxies.py: SilentFirewall).

What each test shows, and how it could fail:
- the control: with heartbeats slower than the firewall's idle timer, a raw stream goes quiet for good
  after the cut and a message posted later never arrives (so the firewall really drops flows);
- the Python client at default settings delivers every one of 20 messages within 10 s of its
  acknowledgement, across quiet spells longer than the firewall's timer, on one stream;
- behind a firewall harsher than the server's default interval, the client notices the stall (2 x the
  interval + slack), reconnects asking for heartbeats twice as often and then stays up on SSE.
The browser's side of the same firewall is in tests/test_widget.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager

import httpx
import pytest

from helpline import Settings
from helpline.client import AsyncClient, Event
from tests.conftest import LiveServer, make_settings
from tests.proxies import SilentFirewall, silent_firewall, silent_firewall_proxy
from tests.test_proxies import StreamWatch, customer_conversation, is_message, is_open, post_message, watch_stream

__all__ = ["silent_firewall_proxy"]  # fixture, re-exported for pytest

pytestmark = pytest.mark.proxy

DEMO_PASSWORD = "firewall-demo-password"


@pytest.fixture
def live_settings(sqlite_url: str) -> Settings:
    """The server's defaults, as shipped (heartbeat interval, heartbeat events, poll hold)."""
    return make_settings(sqlite_url, demo=True, demo_password=DEMO_PASSWORD)


@asynccontextmanager
async def collecting(client: AsyncClient) -> AsyncIterator[asyncio.Queue[tuple[float, Event]]]:
    received: asyncio.Queue[tuple[float, Event]] = asyncio.Queue()

    async def collect() -> None:
        async with aclosing(client.events()) as events:
            async for event in events:
                await received.put((time.monotonic(), event))

    consumer = asyncio.create_task(collect())
    try:
        yield received
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def next_message(received: asyncio.Queue[tuple[float, Event]], deadline: float, what: str) -> tuple[float, Event]:
    while True:
        remaining = deadline - time.monotonic()
        try:
            at, event = await asyncio.wait_for(received.get(), max(0.0, remaining))
        except TimeoutError:
            pytest.fail(f"{what} did not arrive in time")
        if event.type == "conversation.message":
            return at, event


@pytest.fixture
def slow_heartbeat_server(sqlite_url: str) -> Iterator[LiveServer]:
    server = LiveServer(make_settings(sqlite_url, demo=True, demo_password=DEMO_PASSWORD, heartbeat_seconds=60.0))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(60)
async def test_the_firewall_silently_drops_a_flow_left_idle(slow_heartbeat_server: LiveServer) -> None:
    """The control: nothing closes, and nothing more arrives."""
    server = slow_heartbeat_server
    with silent_firewall(server.url, idle_seconds=3.0) as firewall:
        async with (
            httpx.AsyncClient(base_url=firewall.url, timeout=10.0) as through,
            httpx.AsyncClient(base_url=server.url, timeout=10.0) as direct,
        ):
            token, conversation_id = await customer_conversation(direct, "Ada")
            async with watch_stream(through, token) as stream:
                await stream.event(is_open, time.monotonic() + 5.0, "stream.open")
                assert firewall.dropped == 0
                # Idle past the firewall's timer (the server's next heartbeat is a minute away).
                deadline = time.monotonic() + 15.0
                while firewall.dropped < 1:
                    assert time.monotonic() < deadline, "the firewall never dropped the idle flow"
                    await asyncio.sleep(0.1)
                acked = await post_message(direct, token, conversation_id, "into-the-void")
                assert not await stream.ended(acked + 3.0), "the firewall closed the flow; it must stay silent"
                assert not any(is_message("into-the-void")(a.event) for a in stream.arrivals)


@pytest.mark.timeout(120)
async def test_python_client_delivers_every_message_within_10_s_behind_the_firewall(
    silent_firewall_proxy: SilentFirewall, live_server: LiveServer
) -> None:
    firewall = silent_firewall_proxy
    # Quiet spells longer than the firewall's 10 s, between bursts: 20 messages in all.
    schedule = [11.0] + [0.3] * 6 + [12.0] + [0.3] * 6 + [11.0] + [0.3] * 5
    async with (
        AsyncClient(firewall.url) as customer,
        httpx.AsyncClient(base_url=live_server.url, timeout=10.0) as direct,
    ):
        await customer.start_customer_session("demo", display_name="Margaret")
        conversation_id = (await customer.create_conversation())["id"]
        token = customer.token  # messages posted on another connection come back on the stream
        assert token is not None
        async with collecting(customer) as received:
            started = time.monotonic()
            while customer.last_event_id is None or customer.transport != "sse":
                assert time.monotonic() - started < 10, "the client never opened its stream"
                await asyncio.sleep(0.05)
            late: list[tuple[str, float]] = []
            for number, pause in enumerate(schedule):
                await asyncio.sleep(pause)
                message_id = f"reply-{number}"
                acked = await post_message(direct, token, conversation_id, message_id)
                at, event = await next_message(received, acked + 10.0, message_id)
                assert event.data["message_id"] == message_id  # in order, nothing skipped or repeated
                if at - acked > 10.0:
                    late.append((message_id, at - acked))
            assert late == []
            assert customer.transport == "sse"
            assert firewall.dropped == 0, "a flow went idle for 10 s: the default heartbeat did not keep it alive"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("silent_firewall_proxy", [{"idle_seconds": 4.0}], indirect=True, ids=["4s"])
async def test_python_client_asks_for_faster_heartbeats_after_a_stall(
    silent_firewall_proxy: SilentFirewall, live_server: LiveServer
) -> None:
    """A firewall harsher than the server's default interval: one stall, then the flow stays alive."""
    firewall = silent_firewall_proxy
    async with AsyncClient(firewall.url) as customer, httpx.AsyncClient(base_url=live_server.url) as direct:
        session = await customer.start_customer_session("demo", display_name="Grace")
        conversation_id = (await customer.create_conversation())["id"]
        token = customer.token
        assert token is not None and session["access_token"] == token
        async with collecting(customer) as received:
            # The first stream (5 s heartbeats) is dropped after 4 s idle; 2 x 5 + 3 s later the watchdog
            # fires and the client reconnects with ?heartbeat=2.5.
            deadline = time.monotonic() + 40
            while customer._stream is None or customer._stream.heartbeat != 2.5:
                assert time.monotonic() < deadline, "the client never asked for faster heartbeats"
                await asyncio.sleep(0.1)
            drops = firewall.dropped
            assert drops >= 1
            await asyncio.sleep(9.0)  # more than twice the firewall's timer, on the new stream
            acked = await post_message(direct, token, conversation_id, "after-adapting")
            at, event = await next_message(received, acked + 5.0, "after-adapting")
            assert event.data["message_id"] == "after-adapting" and at - acked < 5.0
            assert customer.transport == "sse"
            assert firewall.dropped == drops, "the adapted stream was dropped too"


# -- the server's side: heartbeat events by default, the interval a client may ask for ------------------
@pytest.mark.timeout(60)
async def test_heartbeats_are_events_by_default_and_a_client_may_ask_for_a_shorter_interval(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10.0) as http:
        token, _ = await customer_conversation(http, "Ada")
        headers = {"Authorization": f"Bearer {token}"}
        for asked, announced in [(None, 5.0), ("2.5", 2.5), ("0.01", 2.0), ("600", 5.0)]:
            params = {} if asked is None else {"heartbeat": asked}
            request = http.build_request(
                "GET", "/api/v1/events", params=params, headers=headers, timeout=httpx.Timeout(10.0, read=None)
            )
            response = await http.send(request, stream=True)
            try:
                stream = StreamWatch(response)
                reader = asyncio.create_task(stream.run())
                opened = await stream.event(is_open, time.monotonic() + 5.0, "stream.open")
                assert opened.event.json()["heartbeat_seconds"] == announced
                assert opened.event.json()["heartbeat_min_seconds"] == 2.0
                if asked == "2.5":
                    beat = await stream.event(
                        lambda e: e.event == "stream.heartbeat", opened.at + 10.0, "a stream.heartbeat event"
                    )
                    assert beat.event.id is None and beat.event.json()["type"] == "stream.heartbeat"
                    assert 2.0 <= beat.at - opened.at <= 5.0
                    assert stream.heartbeats(opened.at), "the comment goes with the event"
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            finally:
                await response.aclose()
        for junk in ["soon", "nan", "inf"]:
            refused = await http.get("/api/v1/events", params={"heartbeat": junk}, headers=headers)
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "validation_error"
