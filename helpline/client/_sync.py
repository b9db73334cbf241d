"""The blocking client, on `httpx.Client`."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any

import httpx

from helpline.client._common import (
    CONVERSATIONS,
    EVENTS_PATH,
    POLL_PATH,
    ClientBase,
    conversation_path,
    drop_none,
    new_id,
    segment,
    transfer_body,
)
from helpline.client._errors import (
    HTTPX_ERRORS,
    HelplineError,
    as_object,
    decode_json,
    error_from_response,
    transport_error,
)
from helpline.client._events import Event
from helpline.client._retry import Backoff, retry_delay
from helpline.client._stream import StreamState, is_event_stream

_Item = bytes | Exception | None  # a chunk, the reader's failure, or None at the end of the stream


class Client(ClientBase):
    """A blocking Helpline client; the package docstring shows it in use.

    Options (keywords): `token`, `timeout` (seconds per request), `heartbeat_seconds` (the server's
    heartbeat interval until its stream.open announces it, default 5), `first_byte_timeout` (default 5),
    `sse_retry_after` (default 60), `poll_timeout` (default 20), `max_retries` (for idempotent calls,
    default 3), `http_transport`.
    One `events()` iteration at a time per client; `close()`, even from another thread, ends it.
    """

    _http: httpx.Client

    def _open_http(self, transport: Any) -> None:
        self._closed = threading.Event()
        self._reading: httpx.Response | None = None  # the open event stream, for close() to interrupt
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, transport=transport, headers=self.user_agent
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; a running `events()` iteration ends."""
        self._closed.set()
        if self._reading is not None:
            _interrupt(self._reading)
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        retries: int = 0,
        http_timeout: httpx.Timeout | None = None,
    ) -> Any:
        """Send one authenticated request and return its decoded JSON body (None when empty).

        With `retries`, transport errors and 503 are retried with backoff: only for idempotent calls.
        """
        backoff, attempt = Backoff(initial=0.5, maximum=8.0), 0
        while True:
            try:
                response = self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=self.auth_headers(),
                    timeout=http_timeout if http_timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except HTTPX_ERRORS as exc:
                error: HelplineError = transport_error(exc)
            else:
                if response.is_success:
                    return decode_json(response)
                error = error_from_response(response)
            delay = retry_delay(error, attempt, retries, backoff)
            if delay is None:
                raise error
            attempt += 1
            time.sleep(delay)

    # -- credentials
    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in as staff and keep the token for later calls; returns the user."""
        body = self.request("POST", "/api/v1/auth/login", {"username": username, "password": password})
        return self.remember_login(as_object(body))

    def start_customer_session(
        self,
        deployment_key: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        pre_chat: dict[str, Any] | None = None,
        identity_token: str | None = None,
    ) -> dict[str, Any]:
        """Start a customer session; keeps the token, and `last_event_id` as where `events()` resumes."""
        fields = drop_none(display_name=display_name, email=email, pre_chat=pre_chat, identity_token=identity_token)
        body = self.request("POST", f"/api/v1/deployments/{segment(deployment_key)}/sessions", fields)
        return self.remember_session(as_object(body))

    # -- conversations
    def create_conversation(self, id: str | None = None, pre_chat: dict[str, Any] | None = None) -> dict[str, Any]:
        """Open a conversation; with an `id` the call is idempotent, so it is retried."""
        body = drop_none(id=id, pre_chat=pre_chat)
        retries = self.max_retries if id is not None else 0
        return as_object(self.request("POST", CONVERSATIONS, body, retries=retries))

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return as_object(self.request("GET", conversation_path(conversation_id)))

    def list_conversations(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = drop_none(status=status, limit=limit, cursor=cursor)
        return as_object(self.request("GET", CONVERSATIONS, params=params))

    def get_entries(
        self,
        conversation_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page of entries: `{entries, next_cursor}`."""
        params = drop_none(after=after, before=before, limit=limit)
        return as_object(self.request("GET", conversation_path(conversation_id, "entries"), params=params))

    def send_message(self, conversation_id: str, text: str, id: str | None = None) -> dict[str, Any]:
        """Post a message. Its id (generated when not given) makes retries safe: the server stores it once."""
        body = {"id": id or new_id(), "text": text}
        path = conversation_path(conversation_id, "messages")
        return as_object(self.request("POST", path, body, retries=self.max_retries))

    def typing(self, conversation_id: str, state: str) -> None:
        """Signal `"started"` or `"stopped"` typing (ephemeral: neither stored nor replayed)."""
        self.request("POST", conversation_path(conversation_id, "typing"), {"state": state})

    def receipt(self, conversation_id: str, type: str, entry_id: str) -> None:
        """Acknowledge an entry as `"delivered"` or `"read"`."""
        body = {"type": type, "entry_id": entry_id}
        self.request("POST", conversation_path(conversation_id, "receipts"), body)

    def close_conversation(self, conversation_id: str) -> Any:
        return self.request("POST", conversation_path(conversation_id, "close"))

    def add_note(self, conversation_id: str, text: str, id: str | None = None) -> dict[str, Any]:
        """An internal note (staff only, never shown to the customer); retried safely by its id."""
        body = {"id": id or new_id(), "text": text}
        return as_object(
            self.request("POST", conversation_path(conversation_id, "notes"), body, retries=self.max_retries)
        )

    def escalate(self, conversation_id: str, summary: str | None = None, queue_id: str | None = None) -> Any:
        """Hand the conversation to people (a bot's way out); `summary` becomes a note for them."""
        body = drop_none(summary=summary, queue_id=queue_id)
        return self.request("POST", conversation_path(conversation_id, "escalate"), body)

    def transfer(self, conversation_id: str, *, to_user_id: str | None = None, to_queue_id: str | None = None) -> Any:
        """Transfer to a user or to a queue (exactly one of them)."""
        body = transfer_body(to_user_id, to_queue_id)
        return self.request("POST", conversation_path(conversation_id, "transfer"), body)

    def assign(self, conversation_id: str, user_id: str) -> Any:
        return self.request("POST", conversation_path(conversation_id, "assign"), {"user_id": user_id})

    # -- reps
    def set_presence(self, status: str) -> Any:
        """`"online"`, `"busy"`, `"away"` or `"offline"`."""
        return self.request("PUT", "/api/v1/me/presence", {"status": status})

    def offers(self) -> Any:
        """The caller's pending offers."""
        return self.request("GET", "/api/v1/offers")

    def accept_offer(self, offer_id: str) -> Any:
        return self.request("POST", f"/api/v1/offers/{segment(offer_id)}/accept")

    def decline_offer(self, offer_id: str) -> Any:
        return self.request("POST", f"/api/v1/offers/{segment(offer_id)}/decline")

    # -- the event stream
    def events(self, last_event_id: int | None = None) -> Generator[Event, None, None]:
        """Yield events forever, reconnecting, resuming and de-duplicating (see `StreamState`).

        Starts after `last_event_id`, else where the last iteration or the customer session left off.
        Raises `HTTPStatusError` for what reconnecting cannot fix (401, 403, 404).
        """
        state = self.stream_state(last_event_id)
        while not self._closed.is_set():
            try:
                if state.choose(time.monotonic()) == "sse":
                    yield from self._sse(state)
                else:
                    yield from self._poll(state)
            except HelplineError as error:
                if self._closed.is_set():
                    return
                state.failed(error)
            self._closed.wait(state.delay)

    def _sse(self, state: StreamState) -> Generator[Event, None, None]:
        headers = self.auth_headers(state.sse_headers())
        request = self._http.build_request(
            "GET", EVENTS_PATH, params=state.sse_params(), headers=headers, timeout=self.stream_timeout
        )
        try:
            # A proxy that holds the whole response holds its headers too: waiting for them is bounded by
            # the first-byte timeout and counts as a stall, which is what moves us to long-polling.
            opened = _send_within(self._http, request, self.first_byte_timeout)
            if opened is None:
                state.opened(time.monotonic())
                state.stalled(time.monotonic())
                return
            with contextlib.closing(opened) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                if not is_event_stream(response):
                    state.not_event_stream(time.monotonic())
                    return
                yield from self._pump(response, state)
        except HTTPX_ERRORS as exc:
            raise transport_error(exc) from exc

    def _pump(self, response: httpx.Response, state: StreamState) -> Generator[Event, None, None]:
        """Read the stream in a helper thread, so the watchdog can time out a read that never returns."""
        chunks: queue.Queue[_Item] = queue.Queue(maxsize=64)
        stop = threading.Event()
        reader = threading.Thread(target=_read, args=(response, chunks, stop), name="helpline-sse", daemon=True)
        state.opened(time.monotonic())
        reader.start()
        finished = False
        self._reading = response
        try:
            while True:
                try:
                    item = chunks.get(timeout=state.watchdog.remaining(time.monotonic()))
                except queue.Empty:
                    state.stalled(time.monotonic())
                    return
                if item is None or isinstance(item, Exception):
                    finished = True
                    if item is not None:
                        raise item
                    state.ended(time.monotonic())
                    return
                for event in state.received(item, time.monotonic()):
                    if state.accept(event):
                        yield event
                        state.watchdog.resume(time.monotonic())
                if state.reconnect_requested:
                    state.ended(time.monotonic())
                    return
        finally:
            self._reading = None
            stop.set()
            if not finished:
                _interrupt(response)

    def _poll(self, state: StreamState) -> Generator[Event, None, None]:
        started = time.monotonic()
        timeout = self.poll_http_timeout(state)
        body = self.request("GET", POLL_PATH, params=state.poll_params(), http_timeout=timeout)
        events, cursor = state.polled(body, time.monotonic() - started)
        for event in events:
            if state.accept(event):
                yield event
        state.advance(cursor)


def _read(response: httpx.Response, chunks: queue.Queue[_Item], stop: threading.Event) -> None:
    """The reader thread: move chunks to the queue until the stream ends or the consumer gives up."""
    item: _Item = None
    try:
        for chunk in response.iter_bytes():
            if not _put(chunks, chunk, stop):
                return
    except Exception as exc:  # handed over: the consumer thread decides what it means
        item = exc
    _put(chunks, item, stop)


def _put(chunks: queue.Queue[_Item], item: _Item, stop: threading.Event) -> bool:
    """Put with backpressure (the queue is bounded) without blocking forever once the consumer left."""
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.25)
            return True
        except queue.Full:
            continue
    return False


def _interrupt(response: httpx.Response) -> None:
    """Wake the reader thread out of a blocking read by shutting the socket down (best effort).

    Closing a socket does not wake a thread blocked reading it; shutting it down does. The base-class
    call also works for TLS sockets without touching their TLS state, which the reader may be using.
    """
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if callable(get_extra_info) else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _send_within(http: httpx.Client, request: httpx.Request, seconds: float) -> httpx.Response | None:
    """Send and wait at most ``seconds`` for the response headers; None when they did not come.

    The request goes on in its thread; if its response arrives after we gave up, that thread closes it.
    """
    outcome: list[httpx.Response | BaseException] = []
    lock = threading.Lock()
    gave_up = False

    def send() -> None:
        try:
            result: httpx.Response | BaseException = http.send(request, stream=True)
        except BaseException as exc:  # handed to the caller below, or dropped if it gave up
            result = exc
        with lock:
            if gave_up:
                if isinstance(result, httpx.Response):
                    result.close()
                return
            outcome.append(result)

    worker = threading.Thread(target=send, name="helpline-sse-open", daemon=True)
    worker.start()
    worker.join(seconds)
    with lock:
        if not outcome:
            gave_up = True
            return None
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
