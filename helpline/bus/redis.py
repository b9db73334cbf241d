"""The Redis bus: committed events cross processes and nodes through one Redis pub/sub channel.

Every process subscribes to **one** channel and fans out locally (the in-process bus's dict of
subscriptions): one ``PUBLISH`` per event however many recipients it has, no ``SUBSCRIBE`` churn as
streams come and go, and no window between a stream's subscription and its replay, because the process
is subscribed before it serves any stream.

The bus is a wake-up, not the record: pub/sub is at-most-once (a publisher may die between its
COMMIT and its PUBLISH, a publish may fail, a subscription may drop), so nothing here promises
delivery. In a server the bus hands every message to the node's log follower (``receiver``,
``domain/delivery.py``), which delivers stored events in log order and reads the durable log for any id
the bus did not bring; while the subscription is down, the follower's head check serves every stream
from the log, and new streams are accepted. Every other subscription (the control channels, which no
log can replay), and every stream of a bus without a receiver, is ended as a slow consumer when the
subscription drops, and new ones are refused until it is back.

Order: Redis delivers a channel's messages in the order they were published, and the store publishes
each batch in id order before the next batch may begin (on PostgreSQL under the append lock, across
processes; on SQLite under the writer's file lock), so ids normally arrive in increasing order; the
follower relies on the log, not on that, for what it delivers.
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


PUBLISH_PAUSE = 1.0  # after a failed publish, publishes fail at once for this long (see publish_many)


def _unreachable(exc: BaseException | None) -> Unavailable:
    """A publish that failed after its retries: 503 for an ephemeral event (typing); stored ones are
    committed already and reach every node's streams through its log follower's head check."""
    if exc is not None:
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
        self._paused_until = 0.0

    def fan_out(self, channels: Sequence[str], envelope: Envelope) -> None:
        self._local.deliver(channels, envelope)

    def local_principals(self) -> list[str]:
        return self._local.local_principals()

    async def connect(self) -> None:
        # Publishing retries a dropped connection a few times; a publish that still fails is a delay for
        # stored events (every node's log follower finds them with its head check), never a loss.
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)
        self._client = Redis.from_url(self.url, retry=retry, socket_connect_timeout=5, health_check_interval=30)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            raise ConfigurationError(f"cannot reach the bus at {redact(self.url)}: {type(exc).__name__}") from exc
        self._listener = asyncio.create_task(self._listen(), name="helpline-redis-bus")
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await self._subscribed.wait()
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
        await self.publish_many([(channels, envelope)])

    async def publish_many(self, items: Sequence[tuple[list[str], Envelope]]) -> None:
        """A batch in one round trip, in order (a pipeline without MULTI).

        The store publishes while it holds the append lock, so after a publish failed (its retries
        spent) the next ones fail at once for ``PUBLISH_PAUSE`` seconds: a Redis outage must not make
        every write in the cluster wait for a round of retries. Stored events lose nothing by it."""
        assert self._client is not None, "connect() first"
        loop = asyncio.get_running_loop()
        if loop.time() < self._paused_until:
            raise _unreachable(None)
        try:
            if len(items) == 1:
                await self._client.publish(self.channel, encode_message(*items[0]))
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for channels, envelope in items:
                    pipe.publish(self.channel, encode_message(channels, envelope))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._paused_until = loop.time() + PUBLISH_PAUSE
            raise _unreachable(exc) from exc

    def _attach(self, subscription: Subscription) -> None:
        if not self._subscribed.is_set() and not (subscription.from_log and self.receiver is not None):
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
                if self.receiver is not None:
                    self.receiver.bus_back()  # read the log for what was published while we were away
                backoff = 0.25
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("bus subscription lost (%s); streams are served from the log", type(exc).__name__)
            finally:
                self._subscribed.clear()
                if self.receiver is not None:
                    self.receiver.bus_lost()  # its head check keeps every stream going from the log
                self._local.lose_everything(except_from_log=self.receiver is not None)
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
        if self.receiver is None:
            self._local.deliver(channels, envelope)
        else:
            self.receiver.offer(channels, envelope)

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
