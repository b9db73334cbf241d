"""Reading a live server's event stream over a real socket, with a deadline on every wait."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from helpline.sse import ServerSentEvent, SSEDecoder
from tests.world import PASSWORD


class StreamReader:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.raw = bytearray()
        self._chunks = response.aiter_raw()
        self._decoder = SSEDecoder()
        self._ready: deque[ServerSentEvent] = deque()
        self.ended = False

    async def next(self, timeout: float = 5.0) -> ServerSentEvent:
        """The next event (comments are not events); fails the test after ``timeout`` seconds."""
        while not self._ready:
            await self.read_chunk(timeout)
        return self._ready.popleft()

    async def read_chunk(self, timeout: float = 5.0) -> bytes:
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self.ended = True
            raise
        self.raw.extend(chunk)
        self._ready.extend(self._decoder.feed(chunk))
        return chunk

    async def until(self, predicate: Callable[[ServerSentEvent], bool], timeout: float = 5.0) -> list[ServerSentEvent]:
        """Events up to and including the first matching ``predicate``."""
        seen: list[ServerSentEvent] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no matching event within {timeout}s; saw {[e.event for e in seen]}")
            event = await self.next(remaining)
            seen.append(event)
            if predicate(event):
                return seen

    async def drain_to_end(self, timeout: float = 5.0) -> list[ServerSentEvent]:
        """Every event until the server ends the stream."""
        events: list[ServerSentEvent] = []
        try:
            while True:
                events.append(await self.next(timeout))
        except StopAsyncIteration:
            events.extend(self._ready)
            return events


@asynccontextmanager
async def open_stream(
    base_url: str, token: str | None = None, *, path: str = "/api/v1/events", headers: dict[str, str] | None = None
) -> AsyncIterator[StreamReader]:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10.0, read=None)) as client,
        client.stream("GET", path, headers=all_headers) as response,
    ):
        yield StreamReader(response)


async def opened(reader: StreamReader) -> ServerSentEvent:
    """Read up to the ``stream.open`` event every stream starts with."""
    events = await reader.until(lambda e: e.event == "stream.open")
    return events[-1]


def messages(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    return [e.json() for e in events if e.event == "conversation.message"]


class LiveWorld:
    """Staff and customers on a live demo server, made through its REST API."""

    def __init__(self, base_url: str, demo_password: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10.0)
        self.demo_password = demo_password
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def __aenter__(self) -> LiveWorld:
        for who in ("rep", "trainee", "supervisor", "admin"):
            await self.login(who, self.demo_password)
        created = await self.post(
            "admin",
            "/api/v1/admin/users",
            {
                "username": "rep2",
                "password": PASSWORD,
                "permissions": ["chat_user", "chat_rep", "access_conversation_entries"],
            },
        )
        self.ids["rep2"] = created["id"]
        await self.login("rep2", PASSWORD)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def login(self, who: str, password: str) -> None:
        response = await self.http.post("/api/v1/auth/login", json={"username": who, "password": password})
        response.raise_for_status()
        self.tokens[who] = response.json()["access_token"]
        self.ids[who] = response.json()["user"]["id"]

    async def customer(self, name: str) -> str:
        response = await self.http.post("/api/v1/deployments/demo/sessions", json={"display_name": name})
        response.raise_for_status()
        self.tokens[name] = response.json()["access_token"]
        self.ids[name] = response.json()["customer_id"]
        return self.tokens[name]

    async def post(self, who: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        response = await self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.tokens[who]}"})
        if expect is not None:
            assert response.status_code == expect, response.text
        else:
            assert response.is_success, response.text
        return response.json() if response.content else None

    async def conversation(self, customer: str, client_id: str, rep: str | None = None) -> str:
        """Open (or find again) the customer's conversation with this client id; its server id comes back."""
        opened = await self.post(customer, "/api/v1/conversations", {"id": client_id})
        conversation_id: str = opened["id"]
        if rep is not None:
            await self.post("supervisor", f"/api/v1/conversations/{conversation_id}/assign", {"user_id": self.ids[rep]})
        return conversation_id

    async def assign_to_trainee(self, conversation_id: str) -> None:
        """The live-server twin of ``tests.world.assign_to_trainee``: work goes only to reps who can answer
        it (issue 11), so the trainee holds ``access_conversation_entries`` while it is assigned, then an
        admin withdraws it."""
        await self.set_permissions("trainee", ["chat_user", "chat_rep", "access_conversation_entries"])
        await self.post(
            "supervisor", f"/api/v1/conversations/{conversation_id}/assign", {"user_id": self.ids["trainee"]}
        )
        await self.set_permissions("trainee", ["chat_user", "chat_rep"])

    async def set_permissions(self, who: str, permissions: list[str]) -> None:
        response = await self.http.patch(
            f"/api/v1/admin/users/{self.ids[who]}",
            json={"permissions": permissions},
            headers={"Authorization": f"Bearer {self.tokens['admin']}"},
        )
        assert response.is_success, response.text

    async def send(self, who: str, conversation_id: str, text: str, message_id: str) -> dict[str, Any]:
        body = {"id": message_id, "text": text}
        result: dict[str, Any] = await self.post(who, f"/api/v1/conversations/{conversation_id}/messages", body)
        return result
