"""The event stream through real reverse proxies (tests/proxies.py), over real sockets.

What each test shows, and how it could fail:
- through nginx with its default buffering (plain, and compressing ``text/event-stream``), the opening
  padding, the ``retry:`` line and every event arrive at once: ``X-Accel-Buffering: no`` works;
- through haproxy, which cuts connections idle for 10 s, heartbeats keep a quiet stream up for 40 s;
  with heartbeats slower than the timeout the same proxy cuts it (so the first test can fail);
- through an nginx that ignores our header and holds the stream, a raw read gets nothing, and the
  Python client notices, falls back to long-polling and still delivers every message in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from helpline import Settings
from helpline.client import AsyncClient, Event
from helpline.sse import ServerSentEvent, SSEDecoder
from tests.conftest import make_settings
from tests.proxies import Proxy, haproxy_proxy, hostile_nginx_proxy, nginx_proxy

__all__ = ["haproxy_proxy", "hostile_nginx_proxy", "nginx_proxy"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.proxy

DEMO_PASSWORD = "proxy-demo-password"
HEARTBEAT = b": heartbeat"


@pytest.fixture
def heartbeat_seconds() -> float:
    """The server's heartbeat interval; a test overrides it with ``@pytest.mark.parametrize``."""
    return 15.0


@pytest.fixture
def live_settings(sqlite_url: str, heartbeat_seconds: float) -> Settings:
    """A demo server: deployment ``demo`` takes guest customers, so the world is made through the API."""
    # Comments only (heartbeat_events off): these tests watch what intermediaries do with comment heartbeats;
    # the default stream.heartbeat events are tested behind the silent firewall (tests/test_firewall.py).
    return make_settings(
        sqlite_url, demo=True, demo_password=DEMO_PASSWORD, heartbeat_seconds=heartbeat_seconds, heartbeat_events=False
    )


@dataclass(frozen=True)
class Arrival:
    at: float
    event: ServerSentEvent


class StreamWatch:
    """Reads a stream in a background task and timestamps every line and event as it arrives.

    Reads decoded bytes (a proxy may add gzip). Waits take a deadline and fail the test when it passes.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.decoder = SSEDecoder()
        self.lines: list[tuple[float, bytes]] = []
        self.arrivals: list[Arrival] = []
        self.bytes_received = 0
        self.ended_at: float | None = None
        self.error: Exception | None = None
        self._changed = asyncio.Event()
        self._partial = b""

    async def run(self) -> None:
        try:
            async for chunk in self.response.aiter_bytes():
                now = time.monotonic()
                self.bytes_received += len(chunk)
                *complete, self._partial = (self._partial + chunk).split(b"\n")
                self.lines.extend((now, line) for line in complete)
                self.arrivals.extend(Arrival(now, event) for event in self.decoder.feed(chunk))
                self._changed.set()
        except httpx.HTTPError as exc:  # a proxy cutting the stream mid-chunk
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self._changed.set()

    @property
    def last_activity(self) -> float | None:
        return self.lines[-1][0] if self.lines else None

    def heartbeats(self, since: float) -> list[float]:
        return [at for at, line in self.lines if line == HEARTBEAT and at >= since]

    async def _wait_change(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            return False
        return True

    async def event(self, predicate: Callable[[ServerSentEvent], bool], deadline: float, what: str) -> Arrival:
        """The first event matching `predicate`; fails if the stream ends or `deadline` passes first."""
        while True:
            for arrival in self.arrivals:
                if predicate(arrival.event):
                    return arrival
            if self.ended_at is not None:
                pytest.fail(f"the stream ended ({self.error!r}) before {what}; saw {self.seen()}")
            if not await self._wait_change(deadline):
                pytest.fail(f"no {what} before the deadline; saw {self.seen()}")

    async def ended(self, deadline: float) -> bool:
        """Wait until the stream ends (True) or `deadline` passes with it still open (False)."""
        while self.ended_at is None:
            if not await self._wait_change(deadline):
                return self.ended_at is not None
        return True

    def seen(self) -> list[str]:
        return [arrival.event.event for arrival in self.arrivals]


@asynccontextmanager
async def watch_stream(http: httpx.AsyncClient, token: str, headers_within: float = 5.0) -> AsyncIterator[StreamWatch]:
    """Open the stream (failing if its response header takes longer than `headers_within`) and watch it."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    request = http.build_request("GET", "/api/v1/events", headers=headers, timeout=httpx.Timeout(10.0, read=None))
    try:
        response = await asyncio.wait_for(http.send(request, stream=True), headers_within)
    except TimeoutError:
        pytest.fail(f"no response header within {headers_within} s")
    try:
        assert response.status_code == 200, (await response.aread())[:500]
        watch = StreamWatch(response)
        task = asyncio.create_task(watch.run())
        try:
            yield watch
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await response.aclose()


async def customer_conversation(http: httpx.AsyncClient, name: str) -> tuple[str, str]:
    """A guest customer of the demo deployment (no Origin header, as a server-side caller) and a conversation."""
    session = await http.post("/api/v1/deployments/demo/sessions", json={"display_name": name})
    assert session.status_code == 201, session.text
    token = session.json()["access_token"]
    created = await http.post("/api/v1/conversations", json={}, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    return token, created.json()["id"]


async def post_message(http: httpx.AsyncClient, token: str, conversation_id: str, message_id: str) -> float:
    """Send one message; returns when its 201 arrived (the moment it is acknowledged as stored)."""
    response = await http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"id": message_id, "text": f"hello {message_id}"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return time.monotonic()


def is_message(message_id: str) -> Callable[[ServerSentEvent], bool]:
    return lambda e: e.event == "conversation.message" and e.json().get("message_id") == message_id


def is_open(event: ServerSentEvent) -> bool:
    return event.event == "stream.open"


# -- 1. nginx with its default buffering --------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("nginx_proxy", [{}, {"gzip": True}], indirect=True, ids=["plain", "gzip"])
async def test_nginx_default_buffering_delivers_the_opening_and_each_event_at_once(
    nginx_proxy: Proxy, live_settings: Settings
) -> None:
    compressing = "gzip" in nginx_proxy.name
    async with httpx.AsyncClient(base_url=nginx_proxy.url, timeout=10.0) as http:
        token, conversation_id = await customer_conversation(http, "Ada")
        requested = time.monotonic()
        async with watch_stream(http, token) as stream:
            assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
            # With gzip the proxy transforms this response, and only our header keeps it flowing
            # (tests/proxies.py, GZIP_NGINX); the hostile nginx below, which ignores the header, holds it.
            assert stream.response.headers.get("content-encoding") == ("gzip" if compressing else None)

            opened = await stream.event(is_open, requested + 2.0, "stream.open")
            assert opened.at - requested < 1.0, nginx_proxy.logs()
            padding_at, padding = stream.lines[0]
            assert padding.startswith(b":") and len(padding) + 1 >= 2048, padding[:80]
            retry_at, retry = stream.lines[1]
            assert retry == f"retry: {live_settings.retry_milliseconds}".encode()
            assert padding_at <= retry_at <= opened.at
            assert stream.decoder.retry == live_settings.retry_milliseconds

            for number in range(10):
                message_id = f"nginx-{number}"
                acked = await post_message(http, token, conversation_id, message_id)
                arrival = await stream.event(is_message(message_id), acked + 1.0, f"message {message_id}")
                assert arrival.at - acked <= 1.0, nginx_proxy.logs()
            received = [
                a.event.json()["message_id"] for a in stream.arrivals if a.event.event == "conversation.message"
            ]
            assert received == [f"nginx-{number}" for number in range(10)]


# -- 2. haproxy cutting idle connections after 10 s -------------------------------------------------
QUIET_SECONDS = 40.0


@pytest.mark.timeout(90)
@pytest.mark.parametrize("heartbeat_seconds", [3.0])
async def test_heartbeats_keep_a_quiet_stream_open_through_haproxy_idle_timeouts(haproxy_proxy: Proxy) -> None:
    async with httpx.AsyncClient(base_url=haproxy_proxy.url, timeout=10.0) as http:
        token, conversation_id = await customer_conversation(http, "Grace")
        async with watch_stream(http, token) as stream:
            await stream.event(is_open, time.monotonic() + 2.0, "stream.open")
            quiet_from = time.monotonic()

            # The scenario itself: four idle timeouts' worth of silence, during which the stream must stay up.
            cut = await stream.ended(quiet_from + QUIET_SECONDS)
            assert not cut, f"cut after {stream.ended_at - quiet_from:.1f} s: {stream.error!r}\n{haproxy_proxy.logs()}"
            beats = stream.heartbeats(quiet_from)
            assert len(beats) >= QUIET_SECONDS / 4, beats  # about one every 3 s
            gaps = [b - a for a, b in zip([quiet_from, *beats], [*beats, time.monotonic()], strict=True)]
            assert max(gaps) < 5.0, gaps  # every gap well inside haproxy's 10 s
            assert [a.event.event for a in stream.arrivals if a.at >= quiet_from] == []  # only heartbeats

            acked = await post_message(http, token, conversation_id, "after-the-quiet")
            await stream.event(is_message("after-the-quiet"), acked + 1.0, "the message sent after the quiet")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("heartbeat_seconds", [60.0])
async def test_haproxy_cuts_a_stream_whose_heartbeats_are_slower_than_its_timeout(haproxy_proxy: Proxy) -> None:
    async with httpx.AsyncClient(base_url=haproxy_proxy.url, timeout=10.0) as http:
        token, _ = await customer_conversation(http, "Linus")
        async with watch_stream(http, token) as stream:
            await stream.event(is_open, time.monotonic() + 2.0, "stream.open")
            assert await stream.ended(time.monotonic() + 15.0), "haproxy kept an idle stream open for 15 s"
            assert stream.ended_at is not None and stream.last_activity is not None
            idle = stream.ended_at - stream.last_activity
            assert 9.0 <= idle <= 12.5, f"cut after {idle:.1f} s idle\n{haproxy_proxy.logs()}"


# -- 3. a proxy that ignores X-Accel-Buffering and holds the stream ---------------------------------
@pytest.mark.timeout(30)
async def test_hostile_proxy_holds_a_raw_stream(hostile_nginx_proxy: Proxy) -> None:
    """The control: through this proxy an SSE reader gets nothing, not even the padding or a message."""
    async with httpx.AsyncClient(base_url=hostile_nginx_proxy.url, timeout=10.0) as http:
        token, conversation_id = await customer_conversation(http, "Barbara")
        async with watch_stream(http, token) as stream:
            await post_message(http, token, conversation_id, "held")
            # A deliberate 5 s window: the server has written ~2.5 KB by now, and nothing may arrive.
            assert not await stream.ended(time.monotonic() + 5.0)
            assert stream.bytes_received == 0, stream.lines[:3]


async def collect(client: AsyncClient, into: asyncio.Queue[tuple[float, Event]]) -> None:
    async with aclosing(client.events()) as events:
        async for event in events:
            await into.put((time.monotonic(), event))


async def next_message(received: asyncio.Queue[tuple[float, Event]], deadline: float, what: str) -> tuple[float, Event]:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{what} did not arrive in time")
        try:
            at, event = await asyncio.wait_for(received.get(), remaining)
        except TimeoutError:
            pytest.fail(f"{what} did not arrive in time")
        if event.type == "conversation.message":
            return at, event


@pytest.mark.timeout(60)
@pytest.mark.parametrize("heartbeat_seconds", [3.0])
@pytest.mark.parametrize(
    "hostile_nginx_proxy",
    [
        pytest.param({}, id="header-passed"),
        pytest.param({"hold_headers": True}, id="header-held"),
    ],
    indirect=True,
)
async def test_client_falls_back_to_long_polling_behind_a_buffering_proxy(hostile_nginx_proxy: Proxy) -> None:
    received: asyncio.Queue[tuple[float, Event]] = asyncio.Queue()
    # A short poll timeout keeps the teardown short: the server holds an empty poll that long.
    async with AsyncClient(
        hostile_nginx_proxy.url, heartbeat_seconds=3.0, first_byte_timeout=2.0, poll_timeout=3
    ) as client:
        await client.start_customer_session("demo", display_name="Margaret")
        conversation_id = (await client.create_conversation())["id"]
        consumer = asyncio.create_task(collect(client, received))
        try:
            sent = [f"hostile-{number}" for number in range(5)]
            for message_id in sent:
                # The first one is sent while the client still waits on the held stream.
                await client.send_message(conversation_id, f"hello {message_id}", id=message_id)
                acked = time.monotonic()
                at, event = await next_message(received, acked + 10.0, message_id)
                assert event.data["message_id"] == message_id  # in order, nothing skipped or repeated
                assert at - acked <= 10.0
            assert client.transport == "poll"
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    access = (hostile_nginx_proxy.directory / "access.log").read_text()
    assert "GET /api/v1/events HTTP" in access, access  # it tried the stream first
    assert "GET /api/v1/events/poll?" in access, access
