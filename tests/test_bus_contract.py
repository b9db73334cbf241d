"""One contract for every bus backend: routing by channel, bounded inboxes, wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from helpline.bus import Envelope, SlowConsumer, channels_for, open_bus
from helpline.config import ConfigurationError

pytestmark = pytest.mark.timeout(20)
BUS_URLS = [pytest.param("memory://", id="memory")]


def envelope(n: int) -> Envelope:
    return Envelope(n, "conversation.message", f'{{"id":{n}}}')


@pytest.mark.parametrize("url", BUS_URLS)
async def test_an_event_reaches_the_all_channel_and_each_recipient_only(url: str) -> None:
    bus = open_bus(url)
    await bus.connect()
    try:
        async with (
            bus.subscribe(["all"], maxsize=10) as supervisor,
            bus.subscribe(["p:alice"], maxsize=10) as alice,
            bus.subscribe(["p:bob"], maxsize=10) as bob,
        ):
            await bus.publish(channels_for({"alice"}), envelope(1))
            assert [e.id for e in await supervisor.wait(2)] == [1]
            assert [e.id for e in await alice.wait(2)] == [1]
            assert await bob.wait(0.05) == []
    finally:
        await bus.disconnect()


@pytest.mark.parametrize("url", BUS_URLS)
async def test_an_overflowing_inbox_marks_a_slow_consumer_instead_of_dropping_silently(url: str) -> None:
    bus = open_bus(url)
    async with bus.subscribe(["p:alice"], maxsize=3) as inbox:
        for n in range(4):
            await bus.publish(["p:alice"], envelope(n))
        with pytest.raises(SlowConsumer):
            await inbox.wait(1)


@pytest.mark.parametrize("url", BUS_URLS)
async def test_close_wakes_a_waiting_reader_at_once(url: str) -> None:
    bus = open_bus(url)
    async with bus.subscribe(["p:alice"], maxsize=3) as inbox:
        waiting = asyncio.create_task(inbox.wait(30))
        await asyncio.sleep(0)
        inbox.close("client")
        assert await asyncio.wait_for(waiting, 2) == []
        assert inbox.closed_by == "client"


@pytest.mark.parametrize("url", BUS_URLS)
async def test_unsubscribed_inboxes_receive_nothing_more(url: str) -> None:
    bus = open_bus(url)
    async with bus.subscribe(["p:alice"], maxsize=3) as inbox:
        pass
    await bus.publish(["p:alice"], envelope(1))
    assert inbox.drain() == []


def test_an_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported bus URL"):
        open_bus("carrier-pigeon://coop")


def test_an_envelope_carries_its_sse_frame_encoded_once() -> None:
    from helpline.transport.sse import encode_event

    assert envelope(7).frame == encode_event('{"id":7}', event="conversation.message", id=7)
    assert Envelope(None, "conversation.typing_started", "{}").frame.startswith(b"event: ")  # no id line
