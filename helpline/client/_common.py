"""What the sync and async clients share and what needs no I/O: errors, events, reconnection decisions.

Nothing here touches the network or reads the clock; callers pass `now` (a monotonic time) in. That
keeps both clients identical in behaviour and lets tests drive every decision without a server.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from helpline.transport.sse import ServerSentEvent, SSEDecodeError, SSEDecoder

Transport = Literal["sse", "poll"]

CONVERSATIONS = "/api/v1/conversations"
EVENTS_PATH = "/api/v1/events"
POLL_PATH = "/api/v1/events/poll"
# Statuses after which an event stream is worth reopening; any other error needs the caller's attention.
RECONNECTABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
# A sent message is retried only when the server said it stored nothing and asked us to come back.
RETRYABLE = frozenset({503})
MAX_RETRY_AFTER = 30.0  # wait no longer than this inside one call; beyond, the caller should decide


class HelplineError(Exception):
    """Base of every error the client raises: catch it to handle them all."""


class TransportError(HelplineError):
    """The server could not be reached, or the connection broke (the httpx error is the `__cause__`)."""


class ProtocolError(HelplineError):
    """The server answered something PROTOCOL.md does not allow, such as a body that is not JSON."""


class HTTPStatusError(HelplineError):
    """The server answered 4xx or 5xx.

    `status` is the HTTP status, `code` the stable machine code of the problem+json body (e.g.
    `permission_denied`), `detail` its human explanation, `retry_after` the seconds the server asked
    us to wait (429 and 503), when it said so.
    """

    def __init__(
        self,
        status: int,
        code: str | None = None,
        detail: str | None = None,
        *,
        title: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.retry_after = retry_after
        summary = f"{status} {code or title or 'error'}"
        super().__init__(f"{summary}: {detail}" if detail else summary)


# What httpx raises when a request or a stream fails on the way (not for an error status).
HTTPX_ERRORS = (httpx.RequestError, httpx.StreamError)


def transport_error(exc: Exception) -> TransportError:
    """Translate an httpx error at the boundary, keeping the original as the cause."""
    error = TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    error.__cause__ = exc
    return error


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` is either delay-seconds or an HTTP date (RFC 9110 § 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> HTTPStatusError:
    """Build the error for a 4xx/5xx response whose body has been read."""
    try:
        body = response.json()
    except ValueError:  # not JSON (a proxy's HTML error page, say): keep the status alone
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}

    def text(key: str) -> str | None:
        value = problem.get(key)
        return value if isinstance(value, str) else None

    return HTTPStatusError(
        response.status_code,
        text("code"),
        text("detail"),
        title=text("title"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def decode_json(response: httpx.Response) -> Any:
    """The JSON body of a successful response; None when there is none (204, 202 without body)."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ProtocolError(f"{response.request.url.path} answered a body that is not JSON") from exc


def as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {type(value).__name__}")
    return value


def segment(value: str) -> str:
    """Quote an id for use as one path segment, so it can never change the path it is put in."""
    return quote(str(value), safe="")


def conversation_path(conversation_id: str, action: str = "") -> str:
    path = f"{CONVERSATIONS}/{segment(conversation_id)}"
    return f"{path}/{action}" if action else path


def transfer_body(to_user_id: str | None, to_queue_id: str | None) -> dict[str, str]:
    if (to_user_id is None) == (to_queue_id is None):
        raise ValueError("transfer to a user or to a queue: give exactly one of to_user_id, to_queue_id")
    return {"to_user_id": to_user_id} if to_user_id is not None else {"to_queue_id": str(to_queue_id)}


def new_id() -> str:
    """A client-chosen id: sending the same one again lets the server recognise a retry."""
    return uuid.uuid4().hex


def retry_delay(error: HelplineError, attempt: int, retries: int, backoff: Backoff) -> float | None:
    """How long to wait before retrying an idempotent call after `error`, or None to give up."""
    if attempt >= retries:
        return None
    if isinstance(error, HTTPStatusError):
        if error.status not in RETRYABLE:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= MAX_RETRY_AFTER else None
    elif not isinstance(error, TransportError):
        return None
    return backoff.next_delay()


@dataclass(frozen=True, slots=True)
class Event:
    """One Helpline event: `type` (e.g. `conversation.message`) and its JSON `data`.

    `id` is None for ephemeral events (typing), which are neither stored nor replayed.
    """

    id: int | None
    type: str
    data: dict[str, Any]


def _event_id(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ProtocolError(f"event ids are integers, got {value!r}")


def event_from_sse(sse: ServerSentEvent) -> Event:
    try:
        data = as_object(sse.json())
    except ValueError as exc:
        raise ProtocolError("an event's data is not JSON") from exc
    event_type = sse.event if sse.event != "message" else str(data.get("type", "message"))
    return Event(_event_id(sse.id), event_type, data)


def event_from_json(value: Any) -> Event:
    """An element of a long-poll answer: the same object an SSE `data:` line carries, id included."""
    data = as_object(value)
    return Event(_event_id(data.get("id")), str(data.get("type", "message")), data)


class Backoff:
    """Exponential backoff with "equal jitter": the n-th delay is drawn from [d/2, d], d = initial·2ⁿ.

    The jitter keeps clients that lost the same server from coming back in lockstep. `initial` is
    replaced by the stream's `retry:` value, so the server sets the pace; `maximum` caps the growth
    (but never below what the server asked for).
    """

    def __init__(
        self,
        initial: float = 3.0,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        ceiling = max(self.maximum, self.initial)
        delay = min(ceiling, self.initial * self.multiplier ** min(self.attempt, 64))
        self.attempt += 1
        return self._rng.uniform(delay / 2, delay)

    def planned_delay(self) -> float:
        """After a planned end (`stream.reconnect`): anywhere in [0, initial).

        A server shutting down ends every stream at once; spreading the reconnections over one
        retry interval avoids a stampede, while the usual gap stays short.
        """
        return self._rng.uniform(0.0, self.initial)

    def reset(self) -> None:
        self.attempt = 0


class Watchdog:
    """Decides when a silent stream is dead: the server sends a heartbeat comment every
    `heartbeat_seconds`, so two missed ones mean the connection is gone even if TCP has not noticed.
    Until the first complete line arrives, the shorter `first_byte_timeout` applies: headers without a
    body is the signature of an intermediary that buffers the response."""

    def __init__(self, heartbeat_seconds: float, first_byte_timeout: float) -> None:
        self.idle_timeout = 2 * heartbeat_seconds
        self.first_byte_timeout = first_byte_timeout
        self.primed = False
        self._opened = self._last = 0.0

    def start(self, now: float) -> None:
        self.primed = False
        self._opened = self._last = now

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
        poll_timeout: int = 25,
        backoff: Backoff | None = None,
    ) -> None:
        self.last_event_id = last_event_id
        self.transport: Transport = "sse"
        self.delay = 0.0
        self.backoff = backoff or Backoff()
        self.watchdog = Watchdog(heartbeat_seconds, first_byte_timeout)
        self.sse_retry_after = sse_retry_after
        self.poll_timeout = poll_timeout
        self.reconnect_requested = False
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
                self.last_event_id = event.id if event.id is not None else _event_id(event.data.get("last_event_id"))
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
            if event.type == "stream.open":  # the server's greeting: adopt its heartbeat interval
                heartbeat = event.data.get("heartbeat_seconds")
                if isinstance(heartbeat, int | float) and heartbeat > 0:
                    self.watchdog.idle_timeout = 2 * heartbeat
                continue
            events.append(event)
        return events

    def stalled(self, now: float) -> float:
        """The watchdog fired. Reconnect, or fall back to polling if the stream looks buffered."""
        self._stalls += 1
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
        (authentication, permissions, a server that breaks the protocol)."""
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
        cursor = _event_id(answer.get("last_event_id"))
        return [event for event in events if event.type != "stream.reconnect"], cursor


def is_event_stream(response: httpx.Response) -> bool:
    media_type = str(response.headers.get("content-type", "")).partition(";")[0].strip().lower()
    return media_type == "text/event-stream"


class ClientBase:
    """What both clients hold: where the server is, the credentials, the options, the resume point."""

    user_agent = {"User-Agent": "helpline-python-client"}

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        heartbeat_seconds: float = 15.0,
        first_byte_timeout: float = 5.0,
        sse_retry_after: float = 60.0,
        poll_timeout: int = 25,
        max_retries: int = 3,
        http_transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= poll_timeout <= 30:
            raise ValueError("poll_timeout must be between 1 and 30 seconds (PROTOCOL.md caps it at 30)")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user: dict[str, Any] | None = None
        self.customer_id: str | None = None
        self.timeout = timeout
        self.heartbeat_seconds = heartbeat_seconds
        self.first_byte_timeout = first_byte_timeout
        self.sse_retry_after = sse_retry_after
        self.poll_timeout = poll_timeout
        self.max_retries = max_retries
        # read timeouts: a backstop behind the watchdog for streams, the poll's own wait plus slack for polls
        self.stream_timeout = httpx.Timeout(timeout, read=2 * heartbeat_seconds + first_byte_timeout)
        self.poll_http_timeout = httpx.Timeout(timeout, read=poll_timeout + timeout)
        self._resume_from: int | None = None
        self._stream: StreamState | None = None
        self._open_http(http_transport)

    def _open_http(self, transport: Any) -> None:
        """Create the httpx client (`transport`, e.g. an `httpx.MockTransport`, replaces the network)."""
        raise NotImplementedError

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.base_url!r})"

    @property
    def transport(self) -> Transport:
        """How events currently arrive: `"sse"`, or `"poll"` after falling back to long-polling."""
        return self._stream.transport if self._stream else "sse"

    @property
    def last_event_id(self) -> int | None:
        """The id `events()` resumes after: the last one yielded, or the customer session's."""
        return self._stream.last_event_id if self._stream else self._resume_from

    def auth_headers(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def remember_login(self, body: dict[str, Any]) -> dict[str, Any]:
        self.token = _token(body)
        self.user = as_object(body.get("user"))
        return self.user

    def remember_session(self, body: dict[str, Any]) -> dict[str, Any]:
        self.token = _token(body)
        customer_id = body.get("customer_id")
        self.customer_id = None if customer_id is None else str(customer_id)
        self._resume_from = _event_id(body.get("last_event_id"))
        self._stream = None
        return body

    def stream_state(self, last_event_id: int | None) -> StreamState:
        self._stream = StreamState(
            last_event_id=self.last_event_id if last_event_id is None else last_event_id,
            heartbeat_seconds=self.heartbeat_seconds,
            first_byte_timeout=self.first_byte_timeout,
            sse_retry_after=self.sse_retry_after,
            poll_timeout=self.poll_timeout,
        )
        return self._stream


def _token(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str):
        raise ProtocolError("the answer carries no access_token")
    return token


def drop_none(**fields: Any) -> dict[str, Any]:
    """A JSON body or query with the fields the caller left out omitted, not sent as null."""
    return {key: value for key, value in fields.items() if value is not None}
