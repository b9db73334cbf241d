"""One contract for every bus backend (ids ``memory`` and ``redis``): routing by channel, bounded
inboxes, wake-ups; then what only a shared bus must do: carry events between processes in order, and
never lose one silently when its subscription drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as redis

from helpline.bus import Bus, Envelope, SlowConsumer, channels_for, open_bus
from helpline.bus.redis import RedisBus, decode_message, encode_message, split_url
from helpline.config import ConfigurationError
from helpline.errors import Unavailable

pytestmark = pytest.mark.timeout(20)


def envelope(n: int | None, payload: str | None = None) -> Envelope:
    return Envelope(n, "conversation.message", payload or f'{{"id":{n}}}')


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Bus]:
    opened = open_bus(url)
    await opened.connect()
    try:
        yield opened
    finally:
        await opened.disconnect()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_bus_url")
    async with connected(url) as opened:
        yield opened


@pytest.fixture
async def redis_bus(redis_bus_url: str) -> AsyncIterator[RedisBus]:
    """A connected Redis bus on a channel of the test's own."""
    async with connected(redis_bus_url) as opened:
        assert isinstance(opened, RedisBus)
        yield opened


@pytest.fixture
async def redis_admin(redis_bus_url: str) -> AsyncIterator[redis.Redis]:
    """Another client of the same Redis: what the network, an operator or another program does."""
    client = redis.Redis.from_url(split_url(redis_bus_url)[0])
    try:
        yield client
    finally:
        await client.aclose()


async def arrivals(inbox: object, count: int, timeout: float = 5) -> list[Envelope]:
    from helpline.bus import Subscription

    assert isinstance(inbox, Subscription)
    received: list[Envelope] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(received) < count and asyncio.get_running_loop().time() < deadline:
        received += await inbox.wait(0.2)
    return received


async def test_an_event_reaches_the_all_channel_and_each_recipient_only(bus: Bus) -> None:
    async with (
        bus.subscribe(["all"], maxsize=10) as supervisor,
        bus.subscribe(["p:alice"], maxsize=10) as alice,
        bus.subscribe(["p:bob"], maxsize=10) as bob,
    ):
        await bus.publish(channels_for({"alice"}), envelope(1))
        assert [e.id for e in await arrivals(supervisor, 1)] == [1]
        assert [e.id for e in await arrivals(alice, 1)] == [1]
        assert await bob.wait(0.1) == []


async def test_an_overflowing_inbox_marks_a_slow_consumer_instead_of_dropping_silently(bus: Bus) -> None:
    async with bus.subscribe(["p:alice"], maxsize=3) as inbox:
        await bus.publish_many([(["p:alice"], envelope(n)) for n in range(4)])
        with pytest.raises(SlowConsumer):
            await arrivals(inbox, 4)


async def test_close_wakes_a_waiting_reader_at_once(bus: Bus) -> None:
    async with bus.subscribe(["p:alice"], maxsize=3) as inbox:
        waiting = asyncio.create_task(inbox.wait(30))
        await asyncio.sleep(0)
        inbox.close("client")
        assert await asyncio.wait_for(waiting, 2) == []
        assert inbox.closed_by == "client"


async def test_unsubscribed_inboxes_receive_nothing_more(bus: Bus) -> None:
    async with bus.subscribe(["p:alice"], maxsize=3) as inbox:
        pass
    async with bus.subscribe(["p:alice"], maxsize=3) as witness:
        await bus.publish(["p:alice"], envelope(1))
        assert len(await arrivals(witness, 1)) == 1  # it was delivered: just not to the old inbox
    assert inbox.drain() == []


async def test_a_batch_arrives_whole_and_in_order_with_its_frames(bus: Bus) -> None:
    async with bus.subscribe(["p:alice"], maxsize=500) as inbox:
        sent = [envelope(n, f'{{"id":{n},"text":"é \\n spaces"}}') for n in range(1, 201)]
        sent.append(Envelope(None, "conversation.typing_started", "{}"))  # ephemeral: no id
        await bus.publish_many([(["all", "p:alice"], e) for e in sent])
        received = await arrivals(inbox, len(sent))
        assert [(e.id, e.type, e.payload, e.frame) for e in received] == [
            (e.id, e.type, e.payload, e.frame) for e in sent
        ]


def test_an_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported bus URL"):
        open_bus("carrier-pigeon://coop")


def test_an_envelope_carries_its_sse_frame_encoded_once() -> None:
    from helpline.sse import encode_event

    assert envelope(7).frame == encode_event('{"id":7}', event="conversation.message", id=7)
    assert Envelope(None, "conversation.typing_started", "{}").frame.startswith(b"event: ")  # no id line


# -- Redis only --------------------------------------------------------------------------------
def test_a_redis_message_is_one_line_per_field_and_the_payload_as_it_is() -> None:
    channels, decoded = decode_message(encode_message(["all", "p:cus_1"], envelope(9, '{"t":"a\\nb"}')))
    assert channels == ["all", "p:cus_1"] and decoded == envelope(9, '{"t":"a\\nb"}')
    assert decode_message(encode_message(["all"], Envelope(None, "x", "{}")))[1].id is None


def test_each_redis_database_gets_its_own_channel_unless_one_is_named() -> None:
    assert split_url("redis://h:6379/3") == ("redis://h:6379/3", "helpline:3:events")
    assert split_url("redis://h") == ("redis://h", "helpline:0:events")
    assert split_url("rediss://h/1?channel=blue&ssl_cert_reqs=none") == ("rediss://h/1?ssl_cert_reqs=none", "blue")


@pytest.mark.redis
async def test_events_cross_between_processes_in_publish_order(redis_bus_url: str) -> None:
    """Two buses are two server processes: each stream gets every event, whichever node wrote it."""
    async with (
        connected(redis_bus_url) as first,
        connected(redis_bus_url) as second,
        first.subscribe(["p:alice"], maxsize=1000) as here,
        second.subscribe(["all"], maxsize=1000) as there,
    ):
        for n in range(1, 301, 3):  # the writer's batches, interleaved as the append lock orders them
            await first.publish_many([(["all", "p:alice"], envelope(n)), (["all", "p:alice"], envelope(n + 1))])
            await second.publish(["all", "p:alice"], envelope(n + 2))
        for inbox in (here, there):
            assert [e.id for e in await arrivals(inbox, 300)] == list(range(1, 301))


@pytest.mark.redis
async def test_a_dropped_subscription_ends_every_stream_and_refuses_new_ones_until_it_is_back(
    redis_bus: RedisBus, redis_admin: redis.Redis
) -> None:
    bus = redis_bus
    async with bus.subscribe(["p:alice"], maxsize=10) as inbox:
        waiting = asyncio.create_task(inbox.wait(30))
        await asyncio.sleep(0.05)
        await redis_admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the network drops it
        with pytest.raises(SlowConsumer):  # the stream ends, so its client resumes from the log
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(Unavailable):  # until resubscribed, a new stream could miss events
            async with bus.subscribe(["p:alice"], maxsize=10):
                pass
        with pytest.raises(Unavailable):  # and /readyz says so
            await bus.ping()
    for _ in range(100):
        if bus._subscribed.is_set():
            break
        await asyncio.sleep(0.05)
    await bus.ping()
    async with bus.subscribe(["p:alice"], maxsize=10) as again:
        await bus.publish(["p:alice"], envelope(1))
        assert [e.id for e in await arrivals(again, 1)] == [1]


async def test_an_unreachable_redis_is_a_clear_startup_error() -> None:
    bus = open_bus("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match=r"cannot reach the bus at redis://127\.0\.0\.1:1/0"):
        await bus.connect()


@pytest.mark.redis
async def test_a_publish_redis_cannot_take_is_a_503_not_a_crash(redis_bus: RedisBus) -> None:
    reachable = redis_bus._client
    redis_bus._client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)  # Redis went away
    try:
        with pytest.raises(Unavailable):
            await redis_bus.publish(["all"], envelope(1))
        with pytest.raises(Unavailable):
            await redis_bus.publish_many([(["all"], envelope(2)), (["all"], envelope(3))])
    finally:
        await redis_bus._client.aclose()
        redis_bus._client = reachable


@pytest.mark.redis
async def test_a_message_on_the_channel_that_is_not_an_event_is_skipped(
    redis_bus: RedisBus, redis_admin: redis.Redis
) -> None:
    async with redis_bus.subscribe(["all"], maxsize=10) as inbox:
        await redis_admin.publish(redis_bus.channel, b"hello from someone else")
        await redis_admin.publish(redis_bus.channel, b"x\nbad type\nall\n{}")
        await redis_bus.publish(["all"], envelope(1))
        assert [e.id for e in await arrivals(inbox, 1)] == [1]
    await redis_bus.ping()  # still subscribed
