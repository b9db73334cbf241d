"""The event stream over real sockets: framing, resume, isolation, heartbeats, lifetime, caps, tickets."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.streams import LiveWorld, StreamReader, messages, open_stream, opened

pytestmark = pytest.mark.timeout(60)
DEMO_PASSWORD = "demo-password-123"
LiveFactory = Callable[..., LiveServer]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveFactory]:
    """Start live demo servers with chosen settings; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        settings = make_settings(
            f"sqlite:///{tmp_path / f'live{len(servers)}.db'}", demo=True, demo_password=DEMO_PASSWORD, **overrides
        )
        server = LiveServer(settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def world(live: LiveFactory) -> AsyncIterator[LiveWorld]:
    server = live(heartbeat_seconds=15.0)  # the interval these tests were written for (the default is 5 s)
    async with LiveWorld(server.url, DEMO_PASSWORD) as w:
        yield w


async def test_stream_opens_with_padding_retry_and_a_first_event_in_one_go(world: LiveWorld) -> None:
    token = await world.customer("alice")
    async with open_stream(world.base_url, token, headers={"Accept-Encoding": "gzip, br"}) as stream:
        headers = stream.response.headers
        assert headers["content-type"] == "text/event-stream; charset=utf-8"
        assert headers["cache-control"] == "no-cache, no-store, no-transform"
        assert headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in headers  # never compressed, whatever the client accepts
        first = await opened(stream)
        assert first.json()["heartbeat_seconds"] == 15.0
        raw = bytes(stream.raw)
        comment, _, rest = raw.partition(b"\n")
        assert comment.startswith(b":") and len(comment) >= 2048
        assert re.match(rb"(\r?\n)*retry: \d+\n", rest)
        # stream.open names where the stream starts (the head, for a new client), so a browser that loses
        # its first connection before any stored event resumes from there instead of from a later head.
        assert first.id is not None and int(first.id) >= 0


async def test_a_client_that_drops_before_its_first_event_resumes_from_the_open_id(world: LiveWorld) -> None:
    token = await world.customer("alice")
    conversation = await world.conversation("alice", "c-early-drop")
    async with open_stream(world.base_url, token) as stream:  # no Last-Event-ID: a brand-new browser
        start = (await opened(stream)).id
    await world.send("alice", conversation, "sent while disconnected", "gap")  # the browser is away
    async with open_stream(world.base_url, token, headers={"Last-Event-ID": start or ""}) as stream:
        events = await stream.until(lambda e: e.event == "conversation.message")
    assert events[-1].json()["message_id"] == "gap"


async def test_events_arrive_live_with_strictly_increasing_ids(world: LiveWorld) -> None:
    token = await world.customer("alice")
    async with open_stream(world.base_url, token) as stream:
        await opened(stream)
        conversation = await world.conversation("alice", "c-live", rep="rep")
        for n in range(5):
            await world.send("alice", conversation, f"message {n}", f"m{n}")
        events = await stream.until(lambda e: e.event == "conversation.message" and e.json()["message_id"] == "m4")
    assert [m["text"] for m in messages(events)] == [f"message {n}" for n in range(5)]
    ids = [int(e.id) for e in events if e.id is not None]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert {"conversation.created", "conversation.routing", "conversation.participant_changed"} <= {
        e.event for e in events
    }


async def resume_until(world: LiveWorld, token: str, last_id: str, want: set[str], **kw: Any) -> tuple[list[Any], str]:
    """Read one connection resumed from ``last_id`` until ``take`` events, ``want`` or 1 s of quiet."""
    got: list[Any] = []
    headers = {"Last-Event-ID": last_id} if kw.get("header", True) else {}
    path = "/api/v1/events" if kw.get("header", True) else f"/api/v1/events?last_event_id={last_id}"
    async with open_stream(world.base_url, token, path=path, headers=headers) as stream:
        await opened(stream)
        while True:
            try:
                event = await stream.next(10 if want else 1)
            except TimeoutError:
                if want:
                    raise
                return got, last_id
            if event.id is not None:
                got.append(event)
                last_id = event.id
            if len(got) >= kw.get("take", 10**6) or (want and want <= {m["message_id"] for m in messages(got)}):
                return got, last_id


async def test_resume_delivers_every_event_exactly_once_in_order_while_writers_run(world: LiveWorld) -> None:
    token = await world.customer("alice")
    conversation = await world.conversation("alice", "c-resume", rep="rep")
    sent: list[str] = []

    async def writer(who: str, count: int) -> None:
        for n in range(count):
            message_id = f"{who}-{n}"
            await world.send(who, conversation, f"{who} says {n}", message_id)
            sent.append(message_id)

    writers = asyncio.gather(writer("alice", 60), writer("rep", 60))
    received: list[Any] = []
    last_id = "0"
    round_number = 0
    while not writers.done():  # drop and resume repeatedly while both writers keep writing
        got, last_id = await resume_until(world, token, last_id, set(), take=15, header=round_number % 2 == 0)
        received.extend(got)
        round_number += 1
    assert round_number >= 3, "the writers finished before the stream was resumed a few times"
    await writers
    missing = set(sent) - {m["message_id"] for m in messages(received)}
    if missing:
        got, last_id = await resume_until(world, token, last_id, missing)
        received.extend(got)

    ids = [int(e.id) for e in received]
    assert ids == sorted(set(ids)), "ids must be strictly increasing across reconnects: no duplicate, no reorder"
    assert sorted(m["message_id"] for m in messages(received)) == sorted(sent), "every message exactly once"


async def test_a_stream_carries_only_what_its_caller_may_see(world: LiveWorld) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    async with (
        open_stream(world.base_url, bob) as bob_stream,
        open_stream(world.base_url, world.tokens["rep2"]) as rep2_stream,
        open_stream(world.base_url, world.tokens["supervisor"]) as supervisor_stream,
    ):
        for stream in (bob_stream, rep2_stream, supervisor_stream):
            await opened(stream)
        private = await world.conversation("alice", "c-private", rep="rep")
        await world.send("alice", private, "my card number is secret", "secret")
        bobs = await world.conversation("bob", "c-bob", rep="rep2")
        await world.send("bob", bobs, "hello from bob", "bob-1")
        seen_by_supervisor = await supervisor_stream.until(lambda e: e.id is not None and "bob-1" in e.data)
        seen_by_bob = await bob_stream.until(lambda e: "bob-1" in e.data)
        seen_by_rep2 = await rep2_stream.until(lambda e: "bob-1" in e.data)
    assert any("secret" in e.data for e in seen_by_supervisor)
    for events in (seen_by_bob, seen_by_rep2):
        assert all(private not in e.data for e in events), "another customer's conversation leaked"
    assert alice


async def test_after_a_transfer_the_previous_rep_stops_receiving_the_conversation(world: LiveWorld) -> None:
    await world.customer("alice")
    conversation = await world.conversation("alice", "c-transfer", rep="rep")
    online = await world.http.put(
        "/api/v1/me/presence", json={"status": "online"}, headers={"Authorization": f"Bearer {world.tokens['rep2']}"}
    )
    assert online.status_code == 200  # only an online rep with free capacity can take a transfer
    async with open_stream(world.base_url, world.tokens["rep"]) as rep_stream:
        await opened(rep_stream)
        await world.post(
            "rep", f"/api/v1/conversations/{conversation}/transfer", {"to_user_id": world.ids["rep2"]}, 202
        )
        left = await rep_stream.until(lambda e: e.event == "conversation.participant_changed")
        assert left[-1].json()["action"] == "left"
        await world.send("rep2", conversation, "after the transfer", "after")
        await world.send("alice", conversation, "customer after the transfer", "after-2")
        marker = await world.conversation("alice", "c-marker", rep="rep")  # something rep may see, to end the wait
        rest = await rep_stream.until(lambda e: marker in e.data)
    assert all("after" not in e.data or marker in e.data for e in rest), "the old rep still sees new messages"
    history = await world.http.get(
        f"/api/v1/conversations/{conversation}/entries", headers={"Authorization": f"Bearer {world.tokens['rep2']}"}
    )
    assert [m["message_id"] for m in history.json()["entries"] if m["type"] == "conversation.message"] == [
        "after",
        "after-2",
    ]


@pytest.mark.parametrize("resume_from", ["999999999", "not-a-number", "-5"])
async def test_an_unknown_or_malformed_resume_point_yields_one_reset(world: LiveWorld, resume_from: str) -> None:
    token = await world.customer("alice")
    conversation = await world.conversation("alice", "c-reset")
    async with open_stream(world.base_url, token, headers={"Last-Event-ID": resume_from}) as stream:
        events = await stream.until(lambda e: e.event == "stream.reset")
        reset = events[-1]
        assert reset.id is not None and int(reset.id) >= 2  # the head: resuming from it misses nothing new
        await world.send("alice", conversation, "after the reset", "after-reset")
        live_events = await stream.until(lambda e: e.event == "conversation.message")
    assert [e.event for e in events].count("stream.reset") == 1
    assert int(live_events[-1].id or 0) > int(reset.id)


async def test_a_client_too_far_behind_gets_a_reset_instead_of_an_unbounded_replay(live: LiveFactory) -> None:
    server = live(replay_limit=5)
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        token = await world.customer("alice")
        conversation = await world.conversation("alice", "c-far")
        for n in range(10):
            await world.send("alice", conversation, f"{n}", f"m{n}")
        async with open_stream(server.url, token, headers={"Last-Event-ID": "1"}) as stream:
            events = await stream.until(lambda e: e.event == "stream.reset")
        assert events[-1].json()["reason"] == "too_far_behind"


async def test_sse_and_long_poll_deliver_the_same_events_with_the_same_ids_in_order(world: LiveWorld) -> None:
    token = await world.customer("alice")
    conversation = await world.conversation("alice", "c-same", rep="rep")
    for n in range(6):
        await world.send("alice" if n % 2 else "rep", conversation, f"n{n}", f"m{n}")
    async with open_stream(world.base_url, token, headers={"Last-Event-ID": "0"}) as stream:
        streamed = await stream.until(lambda e: e.id is not None and '"m5"' in e.data)
    streamed = [e for e in streamed if e.id is not None and not e.event.startswith("stream.")]
    polled: list[dict[str, Any]] = []
    after = "0"
    while True:
        response = await world.http.get(
            f"/api/v1/events/poll?after={after}&timeout=0", headers={"Authorization": f"Bearer {token}"}
        )
        body = response.json()
        if not body["events"]:
            break
        polled.extend(body["events"])
        after = body["last_event_id"]
    assert [(int(e.id or 0), e.event, e.json()) for e in streamed] == [(p["id"], p["type"], p) for p in polled]


async def test_long_poll_answers_as_soon_as_an_event_exists(world: LiveWorld) -> None:
    token = await world.customer("alice")
    conversation = await world.conversation("alice", "c-poll")
    head = {"last_event_id": "0"}
    while True:  # read until quiet: the router may still be telling alice her queue position
        page = await world.http.get(
            f"/api/v1/events/poll?after={head['last_event_id']}&timeout=1", headers={"Authorization": f"Bearer {token}"}
        )
        if not page.json()["events"]:
            break
        head = page.json()
    waiting = asyncio.create_task(
        world.http.get(
            f"/api/v1/events/poll?after={head['last_event_id']}&timeout=20",
            headers={"Authorization": f"Bearer {token}"},
        )
    )
    await asyncio.sleep(0.2)  # let the poll start waiting; the assertion below does not depend on timing
    await world.send("alice", conversation, "wake up", "wake")
    response = await asyncio.wait_for(waiting, 10)
    assert [e["message_id"] for e in response.json()["events"]] == ["wake"]


async def test_idle_streams_get_heartbeat_comments(live: LiveFactory) -> None:
    server = live(heartbeat_seconds=0.3)
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        token = await world.customer("alice")
        async with open_stream(server.url, token) as stream:
            await opened(stream)
            before = len(stream.raw)
            for _ in range(3):
                await stream.read_chunk(timeout=2)
            assert stream.raw[before:].count(b": heartbeat\n\n") >= 3


async def test_heartbeats_can_be_events_a_page_script_can_see(live: LiveFactory) -> None:
    server = live(heartbeat_seconds=0.3, heartbeat_events=True)
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        token = await world.customer("alice")
        async with open_stream(server.url, token) as stream:
            await opened(stream)
            beat = await stream.next(timeout=2)
    assert beat.event == "stream.heartbeat" and beat.id is None and beat.json()["type"] == "stream.heartbeat"


async def test_streams_end_with_reconnect_after_their_jittered_lifetime(live: LiveFactory) -> None:
    server = live(stream_lifetime_seconds=1.0)
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        token = await world.customer("alice")
        started = asyncio.get_running_loop().time()
        async with open_stream(server.url, token) as stream:
            events = await stream.drain_to_end(timeout=5)
        elapsed = asyncio.get_running_loop().time() - started
    assert events[-1].event == "stream.reconnect" and events[-1].json()["reason"] == "lifetime"
    assert 0.75 <= elapsed < 3.0


async def test_stream_caps_per_identity_and_in_total(live: LiveFactory) -> None:
    server = live(max_streams_per_identity=2, max_streams_total=3)
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        alice, bob = await world.customer("alice"), await world.customer("bob")
        async with open_stream(server.url, alice) as a1, open_stream(server.url, alice) as a2:
            await opened(a1)
            await opened(a2)
            async with open_stream(server.url, alice) as refused:
                assert refused.response.status_code == 429
                assert int(refused.response.headers["retry-after"]) >= 1
            async with open_stream(server.url, bob) as b1:
                await opened(b1)
                async with open_stream(server.url, world.tokens["rep"]) as full:
                    assert full.response.status_code == 503
                    assert "retry-after" in full.response.headers
        async with open_stream(server.url, alice) as again:  # closed streams free their places
            await opened(again)


async def test_stream_tickets_are_single_use_and_tokens_never_go_in_urls(world: LiveWorld) -> None:
    token = await world.customer("alice")
    ticket = (await world.post("alice", "/api/v1/stream-tickets"))["ticket"]
    async with open_stream(world.base_url, path=f"/api/v1/events?ticket={ticket}") as stream:
        await opened(stream)
    async with open_stream(world.base_url, path=f"/api/v1/events?ticket={ticket}") as reused:
        assert reused.response.status_code == 401
    for name in ("access_token", "token", "ticket"):
        async with open_stream(world.base_url, path=f"/api/v1/events?{name}={token}") as refused:
            assert refused.response.status_code == 401
    as_bearer = await world.http.get("/api/v1/conversations", headers={"Authorization": f"Bearer {ticket}"})
    assert as_bearer.status_code == 401  # a ticket is not an access token


async def test_staff_without_chat_user_cannot_open_a_stream(world: LiveWorld) -> None:
    await world.post(
        "admin",
        "/api/v1/admin/users",
        {"username": "nochat", "password": "long-enough-pw", "permissions": ["chat_rep"]},
    )
    await world.login("nochat", "long-enough-pw")
    async with open_stream(world.base_url, world.tokens["nochat"]) as stream:
        await stream.response.aread()
        assert stream.response.status_code == 403
        assert stream.response.json()["permission"] == "chat_user"


async def test_a_client_that_stops_reading_is_disconnected_and_memory_stays_bounded(live: LiveFactory) -> None:
    # Enough requests to fill the kernel's socket buffers, whatever their size: the rate limit is not under test.
    server = live(stream_queue_size=20, stream_write_timeout_seconds=1.0, rate_limit_per_minute=1_000_000)
    async with LiveWorld(server.url, DEMO_PASSWORD) as world:
        token = await world.customer("alice")
        conversation = await world.conversation("alice", "c-slow")
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        # A tiny receive window would be ideal; instead we simply never read while ~20 MB are pushed.
        writer.write(f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        await writer.drain()
        big = "x" * 9000
        for n in range(5000):
            await world.send("alice", conversation, big, f"big-{n}")
            if n % 100 == 99 and await open_streams(world) == 0:
                break
        assert await open_streams(world) == 0, "the stalled stream should have been closed"
        metrics = (await world.http.get("/metrics")).text
        assert re.search(r"^helpline_slow_consumer_disconnects_total [1-9]", metrics, re.M)
        writer.close()


async def open_streams(world: LiveWorld) -> float:
    metrics = (await world.http.get("/metrics")).text
    found = re.search(r'^helpline_open_streams\{transport="sse"\} (\S+)', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def unique() -> str:
    return uuid.uuid4().hex[:8]


__all__ = ["StreamReader", "httpx"]


async def test_a_rep_without_entry_access_never_receives_message_text(world: LiveWorld) -> None:
    """The trainee handles the session (routing, participants) but may not read entries (docs/protocol.md)."""
    await world.customer("alice")
    conversation = await world.conversation("alice", "c-trainee")
    await world.assign_to_trainee(conversation)  # before the stream: a permission change ends open streams
    async with open_stream(
        world.base_url, world.tokens["trainee"], headers={"Last-Event-ID": "0"}
    ) as trainee_stream:  # from the start, so the assignment is replayed
        await opened(trainee_stream)
        await world.send("alice", conversation, "my account number is 1234", "secret-text")
        await world.post("alice", f"/api/v1/conversations/{conversation}/close")
        seen = await trainee_stream.until(lambda e: e.event == "conversation.closed")
    polled = await world.http.get(
        "/api/v1/events/poll?after=0&timeout=0", headers={"Authorization": f"Bearer {world.tokens['trainee']}"}
    )
    assert "conversation.participant_changed" in {e.event for e in seen}
    assert all("1234" not in e.data for e in seen)
    assert "1234" not in polled.text
