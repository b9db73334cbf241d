"""The asynchronous client, on `httpx.AsyncClient`; runs on asyncio or trio (through anyio)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any

import anyio
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


class AsyncClient(ClientBase):
    """The asyncio/trio twin of `Client` (same options, same methods, awaited).

    Options (keywords): `token`, `timeout` (seconds per request), `heartbeat_seconds` (the server's
    heartbeat interval until its stream.open announces it, default 5), `first_byte_timeout` (default 5),
    `sse_retry_after` (default 60), `poll_timeout` (default 20), `max_retries` (for idempotent calls,
    default 3), `http_transport`.
    One `events()` iteration at a time per client. Cancelling the task that iterates `events()`
    closes its connection; so does `aclose()` on the iterator (use `contextlib.aclosing`).
    """

    _http: httpx.AsyncClient

    def _open_http(self, transport: Any) -> None:
        self._closed = False
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport, headers=self.user_agent
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; a running `events()` iteration ends."""
        self._closed = True
        await self._http.aclose()

    async def request(
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
                response = await self._http.request(
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
            await anyio.sleep(delay)

    # -- credentials
    async def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in as staff and keep the token for later calls; returns the user."""
        body = await self.request("POST", "/api/v1/auth/login", {"username": username, "password": password})
        return self.remember_login(as_object(body))

    async def start_customer_session(
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
        body = await self.request("POST", f"/api/v1/deployments/{segment(deployment_key)}/sessions", fields)
        return self.remember_session(as_object(body))

    # -- conversations
    async def create_conversation(
        self, id: str | None = None, pre_chat: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Open a conversation; with an `id` the call is idempotent, so it is retried."""
        body = drop_none(id=id, pre_chat=pre_chat)
        retries = self.max_retries if id is not None else 0
        return as_object(await self.request("POST", CONVERSATIONS, body, retries=retries))

    async def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return as_object(await self.request("GET", conversation_path(conversation_id)))

    async def list_conversations(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = drop_none(status=status, limit=limit, cursor=cursor)
        return as_object(await self.request("GET", CONVERSATIONS, params=params))

    async def get_entries(
        self,
        conversation_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page of entries: `{entries, next_cursor}`."""
        params = drop_none(after=after, before=before, limit=limit)
        return as_object(await self.request("GET", conversation_path(conversation_id, "entries"), params=params))

    async def send_message(self, conversation_id: str, text: str, id: str | None = None) -> dict[str, Any]:
        """Post a message. Its id (generated when not given) makes retries safe: the server stores it once."""
        body = {"id": id or new_id(), "text": text}
        path = conversation_path(conversation_id, "messages")
        return as_object(await self.request("POST", path, body, retries=self.max_retries))

    async def typing(self, conversation_id: str, state: str) -> None:
        """Signal `"started"` or `"stopped"` typing (ephemeral: neither stored nor replayed)."""
        await self.request("POST", conversation_path(conversation_id, "typing"), {"state": state})

    async def receipt(self, conversation_id: str, type: str, entry_id: str) -> None:
        """Acknowledge an entry as `"delivered"` or `"read"`."""
        body = {"type": type, "entry_id": entry_id}
        await self.request("POST", conversation_path(conversation_id, "receipts"), body)

    async def close_conversation(self, conversation_id: str) -> Any:
        return await self.request("POST", conversation_path(conversation_id, "close"))

    async def add_note(self, conversation_id: str, text: str, id: str | None = None) -> dict[str, Any]:
        """An internal note (staff only, never shown to the customer); retried safely by its id."""
        body = {"id": id or new_id(), "text": text}
        path = conversation_path(conversation_id, "notes")
        return as_object(await self.request("POST", path, body, retries=self.max_retries))

    async def escalate(self, conversation_id: str, summary: str | None = None, queue_id: str | None = None) -> Any:
        """Hand the conversation to people (a bot's way out); `summary` becomes a note for them."""
        body = drop_none(summary=summary, queue_id=queue_id)
        return await self.request("POST", conversation_path(conversation_id, "escalate"), body)

    async def transfer(
        self, conversation_id: str, *, to_user_id: str | None = None, to_queue_id: str | None = None
    ) -> Any:
        """Transfer to a user or to a queue (exactly one of them)."""
        body = transfer_body(to_user_id, to_queue_id)
        return await self.request("POST", conversation_path(conversation_id, "transfer"), body)

    async def assign(self, conversation_id: str, user_id: str) -> Any:
        return await self.request("POST", conversation_path(conversation_id, "assign"), {"user_id": user_id})

    # -- reps
    async def set_presence(self, status: str) -> Any:
        """`"online"`, `"busy"`, `"away"` or `"offline"`."""
        return await self.request("PUT", "/api/v1/me/presence", {"status": status})

    async def offers(self) -> Any:
        """The caller's pending offers."""
        return await self.request("GET", "/api/v1/offers")

    async def accept_offer(self, offer_id: str) -> Any:
        return await self.request("POST", f"/api/v1/offers/{segment(offer_id)}/accept")

    async def decline_offer(self, offer_id: str) -> Any:
        return await self.request("POST", f"/api/v1/offers/{segment(offer_id)}/decline")

    # -- the event stream
    async def events(self, last_event_id: int | None = None) -> AsyncGenerator[Event, None]:
        """Yield events forever, reconnecting, resuming and de-duplicating (see `StreamState`).

        Starts after `last_event_id`, else where the last iteration or the customer session left off.
        Raises `HTTPStatusError` for what reconnecting cannot fix (401, 403, 404).
        """
        state = self.stream_state(last_event_id)
        while not self._closed:
            try:
                transport = self._sse if state.choose(time.monotonic()) == "sse" else self._poll
                # aclosing: if our caller stops, the connection closes now, not whenever the GC runs
                async with aclosing(transport(state)) as events:
                    async for event in events:
                        yield event
            except HelplineError as error:
                if self._closed:
                    return
                state.failed(error)
            await anyio.sleep(state.delay)

    async def _sse(self, state: StreamState) -> AsyncGenerator[Event, None]:
        headers = self.auth_headers(state.sse_headers())
        request = self._http.build_request(
            "GET", EVENTS_PATH, params=state.sse_params(), headers=headers, timeout=self.stream_timeout
        )
        try:
            # A proxy that holds the whole response holds its headers too: waiting for them is bounded by
            # the first-byte timeout and counts as a stall, which is what moves us to long-polling.
            with anyio.move_on_after(self.first_byte_timeout) as header_wait:
                opened = await self._http.send(request, stream=True)
            if header_wait.cancelled_caught:
                state.opened(time.monotonic())
                state.stalled(time.monotonic())
                return
            async with aclosing(opened) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_from_response(response)
                if not is_event_stream(response):
                    state.not_event_stream(time.monotonic())
                    return
                state.opened(time.monotonic())
                chunks = response.aiter_bytes()
                try:
                    while True:
                        with anyio.move_on_after(state.watchdog.remaining(time.monotonic())) as watchdog:
                            chunk = await anext(chunks, None)
                        if watchdog.cancelled_caught:
                            state.stalled(time.monotonic())
                            return
                        if chunk is None:
                            state.ended(time.monotonic())
                            return
                        for event in state.received(chunk, time.monotonic()):
                            if state.accept(event):
                                yield event
                                state.watchdog.resume(time.monotonic())
                        if state.reconnect_requested:
                            state.ended(time.monotonic())
                            return
                finally:
                    close = getattr(chunks, "aclose", None)
                    if close is not None:
                        await close()
        except HTTPX_ERRORS as exc:
            raise transport_error(exc) from exc

    async def _poll(self, state: StreamState) -> AsyncGenerator[Event, None]:
        started = time.monotonic()
        timeout = self.poll_http_timeout(state)
        body = await self.request("GET", POLL_PATH, params=state.poll_params(), http_timeout=timeout)
        events, cursor = state.polled(body, time.monotonic() - started)
        for event in events:
            if state.accept(event):
                yield event
        state.advance(cursor)
