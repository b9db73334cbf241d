"""What the sync and async clients share beyond errors, events and the stream: `ClientBase` (server,
credentials, options, resume point), the API's paths, and small helpers for building requests.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx

from helpline.client._errors import ProtocolError, as_object
from helpline.client._events import parse_event_id
from helpline.client._stream import STALL_SLACK_SECONDS, StreamState, Transport

CONVERSATIONS = "/api/v1/conversations"
EVENTS_PATH = "/api/v1/events"
POLL_PATH = "/api/v1/events/poll"


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


def drop_none(**fields: Any) -> dict[str, Any]:
    """A JSON body or query with the fields the caller left out omitted, not sent as null."""
    return {key: value for key, value in fields.items() if value is not None}


class ClientBase:
    """What both clients hold: where the server is, the credentials, the options, the resume point."""

    user_agent = {"User-Agent": "helpline-python-client"}

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        heartbeat_seconds: float = 5.0,
        first_byte_timeout: float = 5.0,
        sse_retry_after: float = 60.0,
        poll_timeout: int = 20,
        max_retries: int = 3,
        http_transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= poll_timeout <= 30:
            raise ValueError("poll_timeout must be between 1 and 30 seconds (docs/protocol.md caps it at 30)")
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
        # Streams: no read timeout of httpx's own; the watchdog times reads out, with the interval the
        # server announces (which may be longer than the one assumed here). Polls: see poll_http_timeout.
        self.stream_timeout = httpx.Timeout(timeout, read=None)
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
        self._resume_from = parse_event_id(body.get("last_event_id"))
        self._stream = None
        return body

    def poll_http_timeout(self, state: StreamState) -> httpx.Timeout:
        """A long-poll's read timeout: its hold + 5 s (docs/protocol.md), never the client's 10 s slack."""
        return httpx.Timeout(self.timeout, read=state.poll_read_timeout())

    def stream_state(self, last_event_id: int | None) -> StreamState:
        self._stream = StreamState(
            last_event_id=self.last_event_id if last_event_id is None else last_event_id,
            heartbeat_seconds=self.heartbeat_seconds,
            first_byte_timeout=self.first_byte_timeout,
            sse_retry_after=self.sse_retry_after,
            poll_timeout=self.poll_timeout,
            stall_slack=STALL_SLACK_SECONDS,
        )
        return self._stream


def _token(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str):
        raise ProtocolError("the answer carries no access_token")
    return token
