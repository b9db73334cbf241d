"""The event stream's decisions: where to resume, over which transport, after how long.

`StreamState` is the state machine of one `events()` iteration; `Watchdog` tells a silent stream from
a dead one. Nothing here touches the network or reads the clock; callers pass `now` (a monotonic time)
in. That keeps both clients identical in behaviour and lets tests drive every decision without a server.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from helpline.client._errors import HelplineError, HTTPStatusError, ProtocolError, TransportError, as_object
from helpline.client._events import Event, event_from_json, event_from_sse, parse_event_id
from helpline.client._retry import Backoff
from helpline.sse import SSEDecodeError, SSEDecoder

Transport = Literal["sse", "poll"]

# Statuses after which an event stream is worth reopening; any other error needs the caller's attention.
RECONNECTABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
# Beyond two heartbeat intervals, how long a silence may last before it counts as a stall: the server's
# timer, the network and our own loop may each be a little late.
STALL_SLACK_SECONDS = 3.0
# A long-poll's read timeout is its hold plus this (docs/protocol.md): an answer that has not come by then
# is stuck in a flow something dropped, not on its way.
POLL_READ_SLACK_SECONDS = 5.0
MIN_POLL_TIMEOUT = 5
# A stall after this many stall deadlines of healthy streaming is a new problem, not a repeat of the last.
HEALTHY_DEADLINES = 4


class Watchdog:
    """Decides when a silent stream is dead: the server sends a `stream.heartbeat` (and a comment) every
    `heartbeat_seconds` of quiet, so twice that plus a slack without a byte means the connection is gone even
    if TCP has not noticed (a firewall that silently dropped the flow). Until the first complete line
    arrives, the shorter `first_byte_timeout` applies: headers without a body is the signature of an
    intermediary that buffers the response."""

    def __init__(self, heartbeat_seconds: float, first_byte_timeout: float, slack: float = 0.0) -> None:
        self.slack = slack
        self.idle_timeout = 0.0
        self.interval(heartbeat_seconds)
        self.first_byte_timeout = first_byte_timeout
        self.primed = False
        self._opened = self._last = 0.0

    def start(self, now: float) -> None:
        self.primed = False
        self._opened = self._last = now

    def interval(self, heartbeat_seconds: float) -> None:
        """The server announced the stream's heartbeat interval: allow two of them, plus the slack (no
        more than one interval, so a test server's tiny interval is not drowned in it)."""
        self.idle_timeout = 2 * heartbeat_seconds + min(self.slack, heartbeat_seconds)

    def lived(self, now: float) -> float:
        return now - self._opened

    def activity(self, now: float, *, complete_line: bool) -> None:
        """Any bytes count as life; only a complete line proves the stream is not being buffered."""
        self._last = now
        self.primed = self.primed or complete_line

    def resume(self, now: float) -> None:
        """Time spent in the caller's code between events is not the server's silence."""
        self._last = now

    def remaining(self, now: float) -> float:
        """Seconds left before the stream counts as stalled."""
        deadline = self._last + self.idle_timeout
        if not self.primed:
            deadline = min(deadline, self._opened + self.first_byte_timeout)
        return max(0.0, deadline - now)


class StreamState:
    """The decisions of one `events()` iteration: where to resume, over which transport, after how long.

    Each lifecycle method (`stalled`, `ended`, `failed`, ...) sets `delay`, the pause before the next
    attempt. The transport is `"sse"` until the stream looks blocked by an intermediary — nothing after
    the headers, or two stalls in a row — then `"poll"` (long-polling) for `sse_retry_after` seconds.
    """

    def __init__(
        self,
        *,
        last_event_id: int | None = None,
        heartbeat_seconds: float = 15.0,
        first_byte_timeout: float = 5.0,
        sse_retry_after: float = 60.0,
        poll_timeout: int = 20,
        stall_slack: float = 0.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.last_event_id = last_event_id
        self.transport: Transport = "sse"
        self.delay = 0.0
        self.backoff = backoff or Backoff()
        self.watchdog = Watchdog(heartbeat_seconds, first_byte_timeout, stall_slack)
        self.sse_retry_after = sse_retry_after
        self.poll_timeout = poll_timeout
        self.reconnect_requested = False
        self.heartbeat: float | None = None  # the current stream's interval, from its stream.open
        self.heartbeat_min = 0.0
        self.heartbeat_wanted: float | None = None  # asked for on the next connection, after a stall
        self._decoder = SSEDecoder()
        self._stalls = 0
        self._poll_since = 0.0

    # -- resuming and de-duplicating
    def accept(self, event: Event) -> bool:
        """Whether to hand `event` to the caller; call it just before yielding, as it moves the resume point.

        Ids only grow, so an id at or below the last one is a replay already delivered. `stream.reset`
        starts a new sequence: its id (or its `last_event_id` field) becomes the resume point.
        """
        if event.type == "stream.reset":
            try:
                self.last_event_id = (
                    event.id if event.id is not None else parse_event_id(event.data.get("last_event_id"))
                )
            except ProtocolError:
                self.last_event_id = None
            return True
        if event.id is None:
            return True
        if self.last_event_id is not None and event.id <= self.last_event_id:
            return False
        self.last_event_id = event.id
        return True

    def advance(self, last_event_id: int | None) -> None:
        """Move the resume point to a long-poll's cursor (after all of its events were yielded)."""
        if last_event_id is not None and (self.last_event_id is None or last_event_id > self.last_event_id):
            self.last_event_id = last_event_id

    # -- choosing the transport
    def choose(self, now: float) -> Transport:
        if self.transport == "poll" and now - self._poll_since >= self.sse_retry_after:
            self.transport = "sse"
        return self.transport

    def _fall_back(self, now: float) -> None:
        self.transport, self._poll_since, self._stalls, self.delay = "poll", now, 0, 0.0

    # -- one SSE connection
    def sse_params(self) -> dict[str, str]:
        return {} if self.heartbeat_wanted is None else {"heartbeat": f"{self.heartbeat_wanted:g}"}

    def sse_headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        return headers

    def opened(self, now: float) -> None:
        self._decoder = SSEDecoder()
        self.watchdog.start(now)
        self.reconnect_requested = False

    def not_event_stream(self, now: float) -> None:
        """A 2xx that is not `text/event-stream`: something on the way rewrote it; try long-polling."""
        self._fall_back(now)

    def received(self, chunk: bytes, now: float) -> list[Event]:
        """Decode a chunk into events, not yet accepted (see `accept`).

        The stream's own control events are consumed here: `stream.reconnect` ends the connection,
        `stream.open` may announce the server's heartbeat interval, which then sets the watchdog (a
        server configured for slower heartbeats would otherwise look dead to a client left at 15 s).
        """
        lines = self._decoder.lines
        try:
            batch = self._decoder.feed(chunk)
        except SSEDecodeError as exc:
            raise ProtocolError(str(exc)) from exc
        if self._decoder.lines > lines and not self.watchdog.primed:
            self.backoff.reset()  # the connection works: the next failure starts the schedule afresh
        self.watchdog.activity(now, complete_line=self._decoder.lines > lines)
        if self._decoder.retry is not None:
            self.backoff.initial = self._decoder.retry / 1000
        events: list[Event] = []
        for sse in batch:
            event = event_from_sse(sse)
            if event.type == "stream.reconnect":
                self.reconnect_requested = True  # what follows on this connection is not for us
                break
            if event.type == "stream.open":  # the server's greeting: its start position and heartbeat
                self.advance(event.id)
                heartbeat = event.data.get("heartbeat_seconds")
                if isinstance(heartbeat, int | float) and heartbeat > 0:
                    self.heartbeat = float(heartbeat)
                    self.watchdog.interval(self.heartbeat)
                floor = event.data.get("heartbeat_min_seconds")
                if isinstance(floor, int | float) and floor > 0:
                    self.heartbeat_min = float(floor)
                continue
            if event.type == "stream.heartbeat":  # its bytes already fed the watchdog
                continue
            events.append(event)
        return events

    def stalled(self, now: float) -> float:
        """The watchdog fired. Reconnect asking for heartbeats twice as often, or fall back to polling if
        the stream looks buffered (nothing after the headers) or stalled again right away."""
        if self.watchdog.primed and self.watchdog.lived(now) > HEALTHY_DEADLINES * self.watchdog.idle_timeout:
            self._stalls = 0  # it streamed fine for a good while: this is a new problem
        self._stalls += 1
        if self.watchdog.primed and self.heartbeat is not None:
            self.heartbeat_wanted = max(self.heartbeat_min, self.heartbeat / 2)
        if not self.watchdog.primed or self._stalls >= 2:
            self._fall_back(now)
        else:
            self.delay = self.backoff.next_delay()
        return self.delay

    def ended(self, now: float) -> float:
        """The server closed the stream, or asked us to reconnect."""
        if not self.watchdog.primed:  # closed before a single line: as good as buffered
            return self.stalled(now)
        self._stalls = 0
        self.delay = self.backoff.planned_delay() if self.reconnect_requested else self.backoff.next_delay()
        return self.delay

    def failed(self, error: HelplineError) -> float:
        """A request failed: set the delay before the next attempt, or re-raise what retrying cannot fix
        (authentication, permissions, a server that breaks the protocol). A long-poll that got no
        answer held too long for this network: the next one holds half as long."""
        if isinstance(error, TransportError) and self.transport == "poll":
            self.poll_timeout = max(MIN_POLL_TIMEOUT, self.poll_timeout // 2)
        if isinstance(error, HTTPStatusError):
            if error.status not in RECONNECTABLE:
                raise error
            self.delay = max(self.backoff.next_delay(), error.retry_after or 0.0)
        elif isinstance(error, TransportError):
            self.delay = self.backoff.next_delay()
        else:
            raise error
        return self.delay

    # -- one long-poll
    def poll_read_timeout(self) -> float:
        return self.poll_timeout + POLL_READ_SLACK_SECONDS

    def poll_params(self) -> dict[str, str]:
        params = {"timeout": str(self.poll_timeout)}
        if self.last_event_id is not None:
            params["after"] = str(self.last_event_id)
        return params

    def polled(self, body: Any, waited: float) -> tuple[list[Event], int | None]:
        """The events of a long-poll answer, and the cursor to `advance` to once they are yielded.

        `waited` is how long the request took. The server holds an empty answer until the poll's
        timeout, so an empty answer that came back early means something else answers: the next poll
        then waits for the backoff instead of spinning.
        """
        answer = as_object(body)
        raw = answer.get("events")
        if not isinstance(raw, list):
            raise ProtocolError("a long-poll answer has no `events` list")
        events = [event_from_json(item) for item in raw]
        if events or waited >= self.poll_timeout / 2:
            self.backoff.reset()
            self.delay = 0.0
        else:
            self.delay = self.backoff.next_delay()
        cursor = parse_event_id(answer.get("last_event_id"))
        return [event for event in events if event.type != "stream.reconnect"], cursor


def is_event_stream(response: httpx.Response) -> bool:
    media_type = str(response.headers.get("content-type", "")).partition(";")[0].strip().lower()
    return media_type == "text/event-stream"
