"""The bus contract, and the bounded per-stream subscription every backend hands out.

Channels: ``all`` carries every event (supervisors subscribe to it); ``p:<principal id>`` carries the
events one customer or staff user may see. Publishing an event sends it to ``all`` and to each
recipient's channel, so a stream subscribes to exactly one channel and never filters.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from helpline.records import StoredEvent
from helpline.sse import encode_event

ALL = "all"


PRINCIPAL_PREFIX = "p:"


def principal_channel(principal_id: str) -> str:
    return f"{PRINCIPAL_PREFIX}{principal_id}"


def channels_for(recipients: Iterable[str]) -> list[str]:
    return [ALL, *(principal_channel(r) for r in recipients)]


@dataclass(frozen=True, slots=True)
class Envelope:
    """What travels on the bus: the event's wire JSON and its SSE frame, each encoded once (when the
    envelope is made) and shared by every subscriber, so fan-out does no per-stream encoding."""

    id: int | None  # None for ephemeral events (typing), which are never stored
    type: str
    payload: str
    frame: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame", encode_event(self.payload, event=self.type, id=self.id))


class SlowConsumer(Exception):
    """A subscription's queue overflowed: its stream must end so the client resumes from the log.

    Dropping one event silently would break "no loss"; buffering without bound would let one stalled
    client exhaust the server's memory. Disconnecting is the only policy that keeps both promises.
    """


class Subscription:
    """A stream's bounded inbox: the bus delivers into it without ever blocking the publisher.

    It holds at most ``maxsize`` envelopes; one more marks it overflowed (see :class:`SlowConsumer`).
    ``close()`` wakes a waiting reader, so a disconnect or a shutdown ends the wait at once.
    """

    __slots__ = ("_items", "_waiter", "channels", "closed", "closed_by", "from_log", "maxsize", "overflowed")

    def __init__(self, channels: tuple[str, ...], maxsize: int, from_log: bool = False) -> None:
        self.channels = channels
        self.maxsize = maxsize
        # A stream's inbox: what it misses while a shared bus is down, the node's log follower brings
        # (domain/delivery.py), so a bus outage neither ends it nor refuses it. Other subscribers (the
        # bus-only control channels) are told of every outage, since nothing else can replay for them.
        self.from_log = from_log
        self._items: deque[Envelope] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False
        self.closed_by = ""

    def deliver(self, envelope: Envelope) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._items) >= self.maxsize:
            self.overflowed = True
            self._items.clear()
        else:
            self._items.append(envelope)
        self._wake()

    def lose(self) -> None:
        """Events meant for this inbox were lost upstream: make it a slow consumer, so it resumes."""
        if not self.closed:
            self.overflowed = True
            self._items.clear()
        self._wake()

    def close(self, by: str = "server") -> None:
        """Stop waiting: ``by`` says who ended it ("client" on disconnect, "server" on shutdown)."""
        if not self.closed:
            self.closed, self.closed_by = True, by
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def drain(self) -> list[Envelope]:
        """Everything queued now, without waiting."""
        if self.overflowed:
            raise SlowConsumer
        items = list(self._items)
        self._items.clear()
        return items

    async def wait(self, timeout: float | None) -> list[Envelope]:
        """What is queued, waiting up to ``timeout`` for something; ``[]`` on timeout or close."""
        if not self._items and not self.closed and not self.overflowed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A bare timer on the waiter, not asyncio.wait_for: that adds a future, a callback and a
            # timeout handle per wait, on every idle stream and on every delivery (bench/RESULTS.md).
            timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self.drain()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Receiver(Protocol):
    """Takes every envelope a bus hands this process (``domain/delivery.py``: the node's log follower,
    which fans stored events out strictly in log order and fills gaps from the log)."""

    def offer(self, channels: Sequence[str], envelope: Envelope) -> None: ...

    def bus_lost(self) -> None: ...

    def bus_back(self) -> None: ...


class Bus(ABC):
    #: Where incoming envelopes go; ``None``: straight to the local subscriptions (:meth:`fan_out`).
    receiver: Receiver | None = None

    def fan_out(self, channels: Sequence[str], envelope: Envelope) -> None:
        """Hand ``envelope`` to this process's subscriptions on ``channels``."""
        raise NotImplementedError

    def local_principals(self) -> list[str]:
        """The principals with a subscription in this process (the ``p:<id>`` channels in use)."""
        return []

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections; the in-process bus has none."""

    async def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise if the bus is unreachable (``/readyz``)."""

    @abstractmethod
    async def publish(self, channels: list[str], envelope: Envelope) -> None: ...

    async def publish_events(self, events: Sequence[StoredEvent]) -> None:
        """The store's on-commit hook: committed events, in id order, to ``all`` and each recipient."""
        await self.publish_many([(channels_for(e.recipients), Envelope(e.id, e.type, e.payload)) for e in events])

    async def publish_many(self, items: Sequence[tuple[list[str], Envelope]]) -> None:
        """Publish in order; a shared bus sends them in one round trip."""
        for channels, envelope in items:
            await self.publish(channels, envelope)

    @abstractmethod
    def _attach(self, subscription: Subscription) -> None: ...

    @abstractmethod
    def _detach(self, subscription: Subscription) -> None: ...

    @asynccontextmanager
    async def subscribe(
        self, channels: Iterable[str], *, maxsize: int, from_log: bool = False
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(tuple(channels), maxsize, from_log)
        self._attach(subscription)
        try:
            yield subscription
        finally:
            self._detach(subscription)
