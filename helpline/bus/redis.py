"""The Redis bus: committed events cross processes and nodes through one Redis pub/sub channel.

Every process subscribes to **one** channel and fans out locally (the in-process bus's dict of
subscriptions): one ``PUBLISH`` per event however many recipients it has, no ``SUBSCRIBE`` churn as
streams come and go, and no window between a stream's subscription and its replay, because the process
is subscribed before it serves any stream.

Order: Redis delivers a channel's messages in the order they were published. The store publishes each
batch in id order before the next batch may begin (on PostgreSQL under the append lock, across
processes; on SQLite under the writer's file lock), so every process sees ids in increasing order, which
is what a stream's "skip what the replay already sent" relies on.

Loss: pub/sub is at-most-once. When a process's subscription drops, events published meanwhile may
never reach it, so every stream it holds is ended as a slow consumer (the client resumes from the
durable log, losing nothing) and new streams are refused with 503 until the subscription is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from helpline.bus.base import Bus, Envelope, Subscription
from helpline.bus.memory import MemoryBus
from helpline.config import ConfigurationError
from helpline.errors import Unavailable
from helpline.urls import redact

logger = logging.getLogger("helpline.bus")

CHANNEL_PREFIX = "helpline"
SUBSCRIBE_TIMEOUT = 10.0


def _unreachable(exc: BaseException) -> Unavailable:
    """A publish that failed after its retries: 503 for an ephemeral event (typing); for stored ones the
    store has committed already, and their streams get them when they next resume."""
    logger.warning("bus publish failed: %s", type(exc).__name__, exc_info=exc)
    return Unavailable("the event bus is unavailable; retry shortly", retry_after=2)


def encode_message(channels: Sequence[str], envelope: Envelope) -> bytes:
    """``id LF type LF channels LF payload``: channel names and types hold no spaces or newlines, and
    the payload is compact JSON (newlines escaped), so nothing is escaped or parsed twice."""
    event_id = "" if envelope.id is None else str(envelope.id)
    return f"{event_id}\n{envelope.type}\n{' '.join(channels)}\n{envelope.payload}".encode()


def decode_message(data: bytes) -> tuple[list[str], Envelope]:
    event_id, event_type, channels, payload = data.decode().split("\n", 3)
    return channels.split(" "), Envelope(int(event_id) if event_id else None, event_type, payload)


def split_url(url: str) -> tuple[str, str]:
    """The connection URL and the channel: ``?channel=`` if given, else one per database number.

    Redis pub/sub ignores the database number, so two installations sharing a Redis on different
    databases would otherwise hear each other's events."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    channel = (query.pop("channel", None) or [""])[0]
    database = parts.path.strip("/") or "0"
    connection = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    return connection, channel or f"{CHANNEL_PREFIX}:{database}:events"


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        self.url, self.channel = split_url(url)
        self._local = MemoryBus()
        self._client: Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def connect(self) -> None:
        # Publishing retries a dropped connection a few times: a publish that still fails leaves its
        # (stored) events to reach streams when they next resume.
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)
        self._client = Redis.from_url(self.url, retry=retry, socket_connect_timeout=5, health_check_interval=30)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            raise ConfigurationError(f"cannot reach the bus at {redact(self.url)}: {type(exc).__name__}") from exc
        self._listener = asyncio.create_task(self._listen(), name="helpline-redis-bus")
        try:
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            await self.disconnect()
            raise ConfigurationError(f"cannot subscribe to the bus at {redact(self.url)}") from None

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> None:
        if self._client is None or not self._subscribed.is_set():
            raise Unavailable("the event bus is not subscribed", retry_after=2)
        await self._client.ping()

    async def publish(self, channels: list[str], envelope: Envelope) -> None:
        assert self._client is not None, "connect() first"
        try:
            await self._client.publish(self.channel, encode_message(channels, envelope))
        except (RedisError, OSError) as exc:
            raise _unreachable(exc) from exc

    async def publish_many(self, items: Sequence[tuple[list[str], Envelope]]) -> None:
        """A batch in one round trip, in order (a pipeline without MULTI)."""
        assert self._client is not None, "connect() first"
        if len(items) == 1:
            await self.publish(*items[0])
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for channels, envelope in items:
                    pipe.publish(self.channel, encode_message(channels, envelope))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unreachable(exc) from exc

    def _attach(self, subscription: Subscription) -> None:
        if not self._subscribed.is_set():
            raise Unavailable("the event bus is reconnecting; retry shortly", retry_after=2)
        self._local._attach(subscription)

    def _detach(self, subscription: Subscription) -> None:
        self._local._detach(subscription)

    async def _listen(self) -> None:
        assert self._client is not None
        backoff = 0.25
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._subscribe(pubsub)
                backoff = 0.25
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("bus subscription lost (%s); its streams resume from the log", type(exc).__name__)
            finally:
                self._subscribed.clear()
                self._local.lose_everything()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _deliver(self, data: bytes) -> None:
        try:
            channels, envelope = decode_message(data)
        except ValueError:  # not ours (someone else PUBLISHed on the channel): skipped, never fatal
            logger.warning("bus: ignored a message that is not a Helpline event: %r", data[:80])
            return
        self._local.deliver(channels, envelope)

    async def _subscribe(self, pubsub: PubSub) -> None:
        """Subscribe, and wait for Redis to confirm it: only then is nothing published missed."""
        await pubsub.subscribe(self.channel)
        while True:
            message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            if message is None:
                raise TimeoutError("no subscription confirmation from Redis")
            if message["type"] == "subscribe":
                self._subscribed.set()
                return
