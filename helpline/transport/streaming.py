"""``GET /api/v1/events``: the SSE endpoint, as a lean raw-ASGI loop (docs/protocol.md "Events").

The life of a stream (drawn in docs/architecture.md):
authenticate → cap → subscribe → read the resume point → send headers, padding, ``retry:`` and the first
event in one write → replay from the log → flush what arrived meanwhile → live: events as they come,
a ``stream.heartbeat`` event (with a comment) after every quiet ``heartbeat_seconds`` (a client may ask
for a shorter interval with ``?heartbeat=S``, within the server's bounds), and ``stream.reconnect`` at the end of a
jittered lifetime or on shutdown. A client that stops reading overflows its bounded inbox or misses a
write deadline, and is disconnected: it resumes from the log, losing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from helpline import events
from helpline.bus import SlowConsumer

if TYPE_CHECKING:
    from helpline.bus.counters import SharedCounters
from helpline.bus.base import ALL, Subscription
from helpline.config import Settings
from helpline.domain.permissions import hidden_events
from helpline.edge.auth import authenticate
from helpline.edge.responses import NOSNIFF, send_problem
from helpline.errors import (
    HelplineError,
    RateLimited,
    Unavailable,
    ValidationFailed,
)
from helpline.events import EventType
from helpline.metrics import Metrics
from helpline.records import Principal
from helpline.services import Services
from helpline.sse import encode_comment, encode_event, encode_preamble
from helpline.transport.resume import channel_of, foreign_offer, parse_event_id, replay

logger = logging.getLogger("helpline.stream")

STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # no-transform forbids compressing or re-encoding proxies; X-Accel-Buffering turns off nginx's buffer.
    (b"cache-control", b"no-cache, no-store, no-transform"),
    (b"x-accel-buffering", b"no"),
    (b"vary", b"Authorization"),
    NOSNIFF,
]
HEARTBEAT = encode_comment("heartbeat")
REVALIDATE = "revalidate"  # the caller's principal changed: reconnect, and authenticate afresh


class HeartbeatFrames:
    """The bytes of one heartbeat: the comment (for intermediaries) and, by default, a `stream.heartbeat`
    event (for page code, which never sees comments) in one write. It is encoded once a second, and
    every idle stream shares those bytes: 20,000 idle streams cost one encode per second, not one per
    heartbeat."""

    def __init__(self, events: bool) -> None:
        self.events = events
        self._second = -1
        self._frame = HEARTBEAT

    def frame(self) -> bytes:
        if not self.events:
            return HEARTBEAT
        second = int(time.time())
        if second != self._second:
            body = events.encode(EventType.STREAM_HEARTBEAT, None, {})
            self._frame = HEARTBEAT + encode_event(body, event=EventType.STREAM_HEARTBEAT)
            self._second = second
        return self._frame


def heartbeat_interval(scope: Scope, settings: Settings) -> float:
    """The stream's heartbeat interval: the server's, or a shorter one the client asked for with
    ``?heartbeat=S`` after it saw a stall (clamped to ``[heartbeat_min_seconds, heartbeat_seconds]``:
    a client can make its own stream chattier, never quieter than the server wants, nor flood it)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw = (query.get("heartbeat") or [""])[0]
    if not raw:
        return settings.heartbeat_seconds
    try:
        asked = float(raw)
    except ValueError:
        asked = math.nan
    if not math.isfinite(asked):
        raise ValidationFailed(
            "query.heartbeat: must be a number of seconds",
            errors=[{"loc": ["query", "heartbeat"], "msg": "must be a number of seconds", "type": "float_parsing"}],
        )
    floor = min(settings.heartbeat_min_seconds, settings.heartbeat_seconds)
    return max(floor, min(settings.heartbeat_seconds, asked))


def control_event(event_type: EventType, event_id: int | None = None, **fields: Any) -> bytes:
    """An event the stream itself emits (open, heartbeat, reconnect); only stream.open has an id."""
    return encode_event(events.encode(event_type, None, fields), event=event_type, id=event_id)


class StreamRegistry:
    """Open streams: enforces the per-identity and total caps, and ends them all on shutdown."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.per_identity: Counter[str] = Counter()
        self.total = 0  # kept alongside, so admitting a stream never sums over every identity
        self.subscriptions: dict[Subscription, Principal] = {}  # open streams and polls, with their caller
        self.background: set[asyncio.Task[None]] = set()  # revalidations and lease releases in flight
        self.counters: SharedCounters | None = None  # set by the app when the bus is shared
        self.heartbeats = HeartbeatFrames(settings.heartbeat_events)
        self.shutting_down = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def admit(self, principal: Principal, transport: str) -> str:
        """Count a stream or poll, or raise (503 total, 429 per identity); with a shared bus, the
        per-identity cap holds across nodes (bus/counters.py): the answer is the stream's lease."""
        self._admit_here(principal, transport)
        if self.counters is None:
            return ""
        lease = await self.counters.admit_stream(principal.id, self.settings.max_streams_per_identity)
        if lease is None:
            self.release(principal, transport)
            self.metrics.streams_refused.labels("identity").inc()
            raise RateLimited("too many open streams for this identity; close one first", retry_after=10)
        return lease

    def _admit_here(self, principal: Principal, transport: str) -> None:
        if self.shutting_down:
            raise Unavailable("the server is restarting; reconnect shortly", retry_after=2)
        if self.total >= self.settings.max_streams_total:
            self.metrics.streams_refused.labels("total").inc()
            raise Unavailable("this server holds as many streams as it may; retry shortly", retry_after=5)
        if self.per_identity[principal.id] >= self.settings.max_streams_per_identity:
            self.metrics.streams_refused.labels("identity").inc()
            raise RateLimited("too many open streams for this identity; close one first", retry_after=10)
        self.per_identity[principal.id] += 1
        self.total += 1
        self._idle.clear()
        self.metrics.open_streams.labels(transport).inc()

    def release(self, principal: Principal, transport: str, lease: str = "") -> None:
        if lease and self.counters is not None:
            task = asyncio.get_running_loop().create_task(self.counters.release_stream(lease))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        self.per_identity[principal.id] -= 1
        self.total -= 1
        if self.per_identity[principal.id] <= 0:
            del self.per_identity[principal.id]
        self.metrics.open_streams.labels(transport).dec()
        if not self.per_identity:
            self._idle.set()

    def track(self, subscription: Subscription, principal: Principal) -> None:
        self.subscriptions[subscription] = principal

    def untrack(self, subscription: Subscription) -> None:
        self.subscriptions.pop(subscription, None)

    def end_streams_of(self, principal_id: str) -> None:
        """A principal changed (disabled, permissions, credential revoked): its streams and polls end
        (``stream.reconnect`` with reason ``revalidate``), and its client authenticates afresh."""
        for subscription, principal in tuple(self.subscriptions.items()):
            if principal.id == principal_id:
                subscription.close(REVALIDATE)

    async def revalidate(self, current: Callable[[Principal], Awaitable[Principal | None]]) -> None:
        """Invalidations may have been missed: end every stream whose caller is no longer who it was."""
        checked: dict[str, bool] = {}
        for subscription, principal in tuple(self.subscriptions.items()):
            if principal.id not in checked:
                try:
                    checked[principal.id] = await current(principal) == principal
                except Exception:  # the store is unreachable too: they reconnect and authenticate again
                    checked[principal.id] = False
            if not checked[principal.id]:
                subscription.close(REVALIDATE)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """End every stream with ``stream.reconnect`` and wait (bounded) for their last writes."""
        self.shutting_down = True
        for subscription in tuple(self.subscriptions):
            subscription.close()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("%d streams still open after shutdown timeout", self.total)


class EventStream:
    """The ASGI endpoint. One instance per app; per-stream state lives in :meth:`__call__`'s frame."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = self.app.state.services
        registry: StreamRegistry = self.app.state.streams
        try:
            principal = await authenticate(services, scope, tickets=True)
            heartbeat = heartbeat_interval(scope, services.settings)
            channel = channel_of(principal)
            lease = await registry.admit(principal, "sse")
        except HelplineError as error:
            await send_problem(send, error)
            return
        try:
            if principal.has("chat_rep"):
                await services.router.rep_connected(principal.id)  # presence back after a disconnect
            await self._serve(services, registry, principal, channel, heartbeat, scope, receive, send)
        except HelplineError as error:  # only before the response starts: _serve handles its own
            await send_problem(send, error)
        finally:
            registry.release(principal, "sse", lease)
            if principal.has("chat_rep") and principal.id not in registry.per_identity:
                await _last_stream_closed(services, principal.id)

    async def _serve(
        self,
        services: Services,
        registry: StreamRegistry,
        principal: Principal,
        channel: str,
        heartbeat: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        settings, metrics = services.settings, registry.metrics
        raw_resume = resume_point(scope)
        write_timeout = settings.stream_write_timeout_seconds

        async with services.bus.subscribe([channel], maxsize=settings.stream_queue_size, from_log=True) as subscription:
            registry.track(subscription, principal)
            watcher = asyncio.create_task(close_on_disconnect(receive, subscription))
            try:
                try:
                    start = await replay(services.store, principal, parse_event_id(raw_resume), settings.replay_limit)
                except HelplineError as error:
                    await send_problem(send, error)
                    return
                await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
                # Padding, retry and a first event go out in one write: buffering intermediaries and some
                # antivirus engines hold a response until enough bytes (or a second event) arrive.
                # stream.open carries the stream's starting position as its id, so that a browser whose
                # first connection drops before any stored event reconnects from there (EventSource only
                # sends Last-Event-ID once it has seen an id), never from a later head.
                opening = [
                    encode_preamble(settings.stream_padding_bytes, settings.retry_milliseconds),
                    control_event(
                        EventType.STREAM_OPEN,
                        start.start_id,
                        heartbeat_seconds=heartbeat,
                        heartbeat_min_seconds=min(settings.heartbeat_min_seconds, settings.heartbeat_seconds),
                    ),
                ]
                last_sent = start.last_id
                if start.reset is not None:
                    metrics.stream_resets.inc()
                    opening.append(encode_event(start.reset.decode(), event=EventType.STREAM_RESET, id=last_sent))
                opening.extend(encode_event(e.payload, event=e.type, id=e.id) for e in start.events)
                metrics.events_replayed.inc(len(start.events))
                if not await _write(send, b"".join(opening), write_timeout):
                    metrics.slow_consumers.inc()
                    return
                lifetime = settings.stream_lifetime_seconds * random.uniform(0.8, 1.0)  # noqa: S311 - jitter
                deadline = time.monotonic() + lifetime
                hidden = hidden_events(principal)
                hide = principal if channel == ALL else None  # supervisors: others' offers stay out
                reason = await self._live(
                    subscription, send, last_sent, deadline, heartbeat, settings, metrics, hidden, hide
                )
                if reason in ("slow", "overflow"):
                    metrics.slow_consumers.inc()
                if reason in ("lifetime", "shutdown", REVALIDATE, "overflow"):
                    # Every end the server chooses is announced and completes the response: a client
                    # (or a proxy) never sees a truncated chunked body it would log as an error.
                    reconnect = "slow" if reason == "overflow" else reason
                    await _write(send, control_event(EventType.STREAM_RECONNECT, reason=reconnect), write_timeout)
                if reason != "disconnected":
                    # After a missed write deadline the client is not reading: a short last try.
                    await _finish(send, 1.0 if reason == "slow" else write_timeout)
            finally:
                registry.untrack(subscription)
                watcher.cancel()

    async def _live(
        self,
        subscription: Subscription,
        send: Send,
        last_sent: int,
        deadline: float,
        heartbeat: float,
        settings: Settings,
        metrics: Metrics,
        hidden: frozenset[str],
        hide_offers_from_others: Principal | None = None,
    ) -> str:
        """``hidden``: event types this caller may not read now (message text without ACE), skipped
        here since the ``all`` channel of supervisors carries every event."""
        heartbeats = self.app.state.streams.heartbeats
        write_timeout = settings.stream_write_timeout_seconds
        delivered = metrics.events_delivered.labels("sse")
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "lifetime"
            try:
                envelopes = await subscription.wait(min(heartbeat, deadline - now))
            except SlowConsumer:
                return "overflow"
            if envelopes:
                chunks = []
                for envelope in envelopes:
                    if envelope.id is not None:
                        if envelope.id <= last_sent:
                            continue  # already sent by the replay
                        last_sent = envelope.id
                    if envelope.type in hidden:
                        continue
                    if hide_offers_from_others and foreign_offer(
                        hide_offers_from_others, envelope.type, envelope.payload
                    ):
                        continue
                    chunks.append(envelope.frame)  # encoded once, shared by every stream
                if chunks:
                    if not await _write(send, b"".join(chunks), write_timeout):
                        return "slow"
                    delivered.inc(len(chunks))
            elif not subscription.closed and time.monotonic() < deadline:
                if not await _write(send, heartbeats.frame(), write_timeout):
                    return "slow"
                metrics.heartbeats.inc()
            if subscription.closed:  # checked after the flush, so in-flight events still go out
                if subscription.closed_by == "client":
                    return "disconnected"
                return REVALIDATE if subscription.closed_by == REVALIDATE else "shutdown"


async def _last_stream_closed(services: Services, user_id: str) -> None:
    """A rep's last stream on this node closed: routing waits until one opens again (domain/routing.py)."""
    try:
        await services.router.rep_disconnected(user_id)
    except Exception:  # the store restarting must not turn a closed stream into an error
        logger.warning("could not record that %s's last stream closed", user_id, exc_info=True)


def resume_point(scope: Scope) -> str:
    """``Last-Event-ID``, else ``?last_event_id=`` (a function, so the parsed headers are not kept alive
    for the stream's lifetime in its frame: every idle stream's bytes count at 20,000 streams)."""
    for name, value in scope["headers"]:
        if name == b"last-event-id" and value:
            return str(value.decode("latin-1"))
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return str((query.get("last_event_id") or [""])[0])


async def _write(send: Send, body: bytes, timeout: float) -> bool:
    """Send one chunk within the write deadline; False when the client is not reading fast enough."""
    message: Message = {"type": "http.response.body", "body": body, "more_body": True}
    try:
        async with asyncio.timeout(timeout):  # no task per write, as asyncio.wait_for would create
            await send(message)
    except TimeoutError:
        return False
    except OSError:
        return False
    return True


async def _finish(send: Send, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (TimeoutError, OSError):
        pass


async def close_on_disconnect(receive: Receive, subscription: Subscription) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            subscription.close("client")
            return


OPENAPI_PATH: dict[str, Any] = {
    "get": {
        "tags": ["events"],
        "summary": "Event stream (Server-Sent Events)",
        "description": (
            "One `text/event-stream` per client, multiplexing every conversation the caller may see. "
            "Authenticate with `Authorization: Bearer` or a single-use `?ticket=` from `POST /api/v1/stream-tickets`. "
            "Resume with the `Last-Event-ID` header or `?last_event_id=`. See docs/events.md for framing and types."
        ),
        "parameters": [
            {"name": "ticket", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "last_event_id", "in": "query", "required": False, "schema": {"type": "string"}},
            {
                "name": "heartbeat",
                "in": "query",
                "required": False,
                "description": (
                    "seconds between heartbeats on this idle stream, for a client that saw a silent stall; "
                    "clamped to the server's bounds (announced in stream.open)"
                ),
                "schema": {"type": "number"},
            },
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {
                "description": "the stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "401": {"description": "not authenticated", "content": {"application/problem+json": {}}},
            "403": {"description": "permission denied", "content": {"application/problem+json": {}}},
            "422": {"description": "a malformed heartbeat", "content": {"application/problem+json": {}}},
            "429": {
                "description": "too many streams for this identity",
                "content": {"application/problem+json": {}},
            },
            "503": {
                "description": "stream capacity reached or shutting down",
                "content": {"application/problem+json": {}},
            },
        },
    }
}
