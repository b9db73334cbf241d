"""The log is the truth, the bus only a wake-up (issue 13), in one process: two live nodes on one SQLite
file, each with its own in-process bus, so nothing one writes is ever published to the other. Whatever
reaches the other node's streams comes from its log follower (domain/delivery.py): the head check, or
the gap fill when its own bus hands it an id beyond the next one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, make_settings
from tests.streams import LiveWorld, StreamReader, open_stream, opened
from tests.test_stream import DEMO_PASSWORD

pytestmark = pytest.mark.timeout(90)
PARTIES = ("alice", "rep2", "supervisor")


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    common: dict[str, Any] = {"rate_limit_per_minute": 100_000, "demo_password": DEMO_PASSWORD}
    first = LiveServer(make_settings(url, demo=True, **common)).start()
    try:
        second = LiveServer(make_settings(url, **common)).start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
async def worlds(nodes: tuple[LiveServer, LiveServer]) -> AsyncIterator[tuple[LiveWorld, LiveWorld]]:
    first, second = nodes
    async with LiveWorld(first.url, DEMO_PASSWORD) as one:
        two = LiveWorld(second.url, DEMO_PASSWORD)
        two.tokens, two.ids = one.tokens, one.ids  # one database: the same people on both nodes
        try:
            yield one, two
        finally:
            await two.http.aclose()


async def streams_on(world: LiveWorld, stack: AsyncExitStack) -> dict[str, StreamReader]:
    readers = {}
    for who in PARTIES:
        readers[who] = await stack.enter_async_context(open_stream(world.base_url, world.tokens[who]))
        await opened(readers[who])
    return readers


async def texts_until(reader: StreamReader, last: str, timeout: float = 10.0) -> list[tuple[int, str]]:
    events = await reader.until(
        lambda e: e.event == "conversation.message" and e.json()["text"] == last, timeout=timeout
    )
    return [(int(e.id or 0), e.json()["text"]) for e in events if e.event == "conversation.message"]


async def test_events_written_on_another_node_arrive_through_the_head_check(
    worlds: tuple[LiveWorld, LiveWorld],
) -> None:
    here, there = worlds
    await here.customer("alice")
    conversation = await here.conversation("alice", "c-head", rep="rep2")
    async with AsyncExitStack() as stack:
        readers = await streams_on(here, stack)
        sent = [f"from-there-{n}" for n in range(5)]
        for text in sent:
            await there.send("alice" if text[-1] in "024" else "rep2", conversation, text, text)
        for who, reader in readers.items():
            received = await texts_until(reader, sent[-1])
            assert [t for _, t in received] == sent, who  # every one, once, in order
            assert [i for i, _ in received] == sorted(i for i, _ in received)


async def test_a_gap_in_what_the_bus_brings_is_filled_from_the_log_first(
    nodes: tuple[LiveServer, LiveServer], worlds: tuple[LiveWorld, LiveWorld]
) -> None:
    """Writes interleaved on both nodes: each of this node's own ids comes after ids it never heard of."""
    here, there = worlds
    follower = nodes[0].app.state.services.follower
    await here.customer("alice")
    conversation = await here.conversation("alice", "c-gap", rep="rep2")
    async with AsyncExitStack() as stack:
        readers = await streams_on(here, stack)
        fills = follower.fills
        sent = []
        for n in range(12):
            text = f"m{n}"
            await (there if n % 3 else here).send("alice", conversation, text, text)
            sent.append(text)
        for who, reader in readers.items():
            assert [t for _, t in await texts_until(reader, sent[-1])] == sent, who
        assert follower.fills > fills  # the log was read for what the bus did not bring
    metrics = (await here.http.get("/metrics")).text
    assert re.search(r"^helpline_log_follower_events_total [1-9]", metrics, re.M)


async def test_customers_see_only_their_own_conversations_when_filled_from_the_log(
    worlds: tuple[LiveWorld, LiveWorld],
) -> None:
    here, there = worlds
    for name in ("alice", "bob"):
        await here.customer(name)
    mine = await here.conversation("alice", "c-alice")
    theirs = await here.conversation("bob", "c-bob")
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(open_stream(here.base_url, here.tokens["alice"]))
        await opened(alice)
        await there.send("bob", theirs, "not for alice", "b1")
        await there.send("alice", mine, "for alice", "a1")
        received = await texts_until(alice, "for alice")
        assert [t for _, t in received] == ["for alice"]


async def test_a_stream_that_falls_behind_ends_with_stream_reconnect_and_a_complete_response(
    tmp_path: Path,
) -> None:
    """An inbox that overflows ends its stream the way every server-chosen end does: ``stream.reconnect``
    (reason ``slow``) and the final chunk, never a truncated chunked body."""
    import asyncio

    settings = make_settings(
        f"sqlite:///{tmp_path / 'slow.db'}",
        demo=True,
        demo_password=DEMO_PASSWORD,
        stream_queue_size=1,
        rate_limit_per_minute=100_000,
    )
    server = LiveServer(settings).start()
    try:
        async with LiveWorld(server.url, DEMO_PASSWORD) as world:
            await world.customer("alice")
            conversation = await world.conversation("alice", "c-slow")
            async with open_stream(world.base_url, world.tokens["supervisor"]) as stream:
                await opened(stream)
                for round_ in range(20):  # concurrent posts share a batch: its events arrive at once
                    await asyncio.gather(
                        *(world.send("alice", conversation, f"m{round_}-{n}", f"m{round_}-{n}") for n in range(6))
                    )
                    if stream.ended or any(e.event == "stream.reconnect" for e in stream._ready):
                        break
                events = await stream.drain_to_end(timeout=10)  # raises if the body were cut short
            ends = [e for e in events if e.event == "stream.reconnect"]
            assert ends and ends[-1].json()["reason"] == "slow"
            assert events[-1].event == "stream.reconnect"
    finally:
        server.stop()
