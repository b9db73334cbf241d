"""Limits at the edge, below the app (helpline/edge/server.py), tried with raw sockets.

What each test shows, and how it could fail:
- a request head over 16 KiB, or with over 100 header lines, is answered ``431 request_header_too_large``
  (problem+json) and the connection closed, while heads just under both limits are served; a 4 MiB
  head is cut after its first reads, not buffered whole;
- slowloris: sockets that trickle an unfinished head, or never send one, are closed at the head
  deadline, while ``/healthz`` answers and a real customer is served (session, message, stream)
  throughout;
- one address may hold at most ``max_connections_per_address`` connections (the next one is a 429 with
  Retry-After), other addresses are unaffected; the node holds at most ``max_connections`` (503);
- an idle keep-alive connection is closed after ``keepalive_seconds``.

Client sockets bind to their own loopback addresses (127.0.0.x) to be different clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from helpline import Settings
from tests.conftest import LiveServer, make_settings
from tests.streams import open_stream, opened

DEMO_PASSWORD = "edge-limits-demo"
HEAD_SECONDS = 1.0


@pytest.fixture
def live_settings(sqlite_url: str) -> Settings:
    return make_settings(
        sqlite_url,
        demo=True,
        demo_password=DEMO_PASSWORD,
        request_head_seconds=HEAD_SECONDS,
        max_connections_per_address=30,
        keepalive_seconds=1.0,
    )


async def connect(server: LiveServer, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))


async def answer(reader: asyncio.StreamReader, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Read one whole response (status, headers, body) from a raw socket."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
    return int(status_line.split(" ")[1]), headers, body


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``timeout``; reads what it says."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def request(*header_lines: str, path: str = "/healthz") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: test\r\n" + "".join(f"{h}\r\n" for h in header_lines) + "\r\n").encode()


def assert_431(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 431, body
    assert headers["content-type"] == "application/problem+json" and headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (431, "request_header_too_large")


async def test_a_head_over_16_kib_is_431_and_one_just_under_is_served(live_server: LiveServer) -> None:
    reader, writer = await connect(live_server)
    writer.write(request("X-Big: " + "a" * (15 * 1024)))  # under 16 KiB in all
    status, _, _ = await answer(reader)
    assert status == 200
    writer.write(request("X-Big: " + "a" * (17 * 1024)))  # the same connection, now over the limit
    assert_431(*await answer(reader))
    assert await closed_by_server(reader)
    writer.close()


async def test_a_4_mib_header_is_refused_after_its_first_reads(live_server: LiveServer) -> None:
    """Without the byte count the server would buffer the whole unfinished head (issue 13: 100 such
    heads took a node from 96 to 479 MB): here it answers 431 and closes while the client still sends."""
    reader, writer = await connect(live_server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Huge: ")
    sent = 0
    try:
        while sent < 4 * 1024 * 1024 and not reader.at_eof():
            writer.write(b"a" * 16384)
            await writer.drain()
            sent += 16384
            await asyncio.sleep(0.002)  # let the server read as it goes
    except ConnectionError:
        pass
    try:
        assert_431(*await answer(reader))
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the close raced the unread bytes into a reset: the connection is cut all the same
    assert sent < 4 * 1024 * 1024, "the server took the whole 4 MiB head"
    writer.close()


async def test_more_than_100_header_lines_is_431_and_100_are_served(live_server: LiveServer) -> None:
    reader, writer = await connect(live_server)
    writer.write(request(*(f"X-H{i}: v" for i in range(99))))  # with Host: 100 lines
    status, _, _ = await answer(reader)
    assert status == 200
    writer.write(request(*(f"X-H{i}: v" for i in range(100))))  # 101
    assert_431(*await answer(reader))
    writer.close()


async def test_slowloris_sockets_are_closed_while_healthz_and_a_customer_are_served(
    live_server: LiveServer,
) -> None:
    trickling = [await connect(live_server, "127.0.0.21") for _ in range(25)]
    silent = [await connect(live_server, "127.0.0.22") for _ in range(25)]
    for _, writer in trickling:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")

    async def trickle() -> None:
        for _ in range(int(HEAD_SECONDS * 20)):  # a header byte every 0.1 s: the head never completes
            for _, writer in trickling:
                if not writer.is_closing():
                    writer.write(b"X")
            await asyncio.sleep(0.1)

    started = time.monotonic()
    trickler = asyncio.create_task(trickle())
    async with httpx.AsyncClient(base_url=live_server.url, timeout=5) as http:
        assert (await http.get("/healthz")).status_code == 200
        session = (await http.post("/api/v1/deployments/demo/sessions", json={})).json()
        auth = {"Authorization": f"Bearer {session['access_token']}"}
        async with open_stream(live_server.url, session["access_token"]) as stream:
            await opened(stream)
            created = await http.post("/api/v1/conversations", json={"id": "conv-slowloris"}, headers=auth)
            assert created.status_code == 201, created.text
            sent = await http.post(
                f"/api/v1/conversations/{created.json()['id']}/messages", json={"id": "m1", "text": "hi"}, headers=auth
            )
            assert sent.status_code == 201, sent.text
            await stream.until(lambda e: e.event == "conversation.message")
        results = await asyncio.gather(*(closed_by_server(r, 15) for r, _ in trickling + silent))
        assert all(results), f"{results.count(False)} of {len(results)} sockets still open"
        assert time.monotonic() - started >= HEAD_SECONDS * 0.9  # closed by the deadline, not at once
        assert (await http.get("/healthz")).status_code == 200
    trickler.cancel()
    for _, writer in trickling + silent:
        writer.close()


async def test_a_head_completed_within_the_deadline_is_served(live_server: LiveServer) -> None:
    reader, writer = await connect(live_server)
    for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: test\r\n", b"\r\n"):
        writer.write(piece)
        await asyncio.sleep(HEAD_SECONDS / 10)
    status, _, _ = await answer(reader)
    assert status == 200
    writer.close()


async def test_one_address_cannot_take_more_than_its_connections(live_server: LiveServer) -> None:
    held = [await connect(live_server, "127.0.0.31") for _ in range(30)]
    reader, writer = await connect(live_server, "127.0.0.31")
    status, headers, body = await answer(reader)
    assert status == 429 and json.loads(body)["code"] == "rate_limited" and "retry-after" in headers
    other_reader, other_writer = await connect(live_server, "127.0.0.32")
    other_writer.write(request())
    assert (await answer(other_reader))[0] == 200
    for _, w in [*held, (reader, writer), (other_reader, other_writer)]:
        w.close()


@pytest.fixture
def small_node(sqlite_url: str) -> Iterator[LiveServer]:
    server = LiveServer(make_settings(sqlite_url, max_connections=20, max_connections_per_address=100)).start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_node_holds_at_most_max_connections(small_node: LiveServer) -> None:
    held = [await connect(small_node, f"127.0.1.{i}") for i in range(1, 21)]
    reader, writer = await connect(small_node, "127.0.2.1")
    status, headers, body = await answer(reader)
    assert status == 503 and json.loads(body)["code"] == "unavailable" and "retry-after" in headers
    for _, w in held:
        w.close()
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=small_node.url, timeout=5) as http:  # room again once they close
        deadline = time.monotonic() + 10
        while (await http.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(live_server: LiveServer) -> None:
    reader, writer = await connect(live_server)
    writer.write(request())
    assert (await answer(reader))[0] == 200
    assert await closed_by_server(reader, 10)  # keepalive_seconds=1
    writer.close()
