"""The HTTP edge (helpline/edge/): rules every response and every request body follows, on every path.

- every response carries ``X-Content-Type-Options: nosniff`` (docs/protocol.md "Errors"): REST answers,
  problems (from the routes, from the body limit, from the stream endpoint), the message fast path,
  the event stream, static files, pages, CORS preflights, 404 and 405;
- a body that is not JSON or not UTF-8 is 400 ``bad_request``, JSON that breaks the schema is 422
  ``validation_error``, the same on the message fast path and on the routes behind FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from tests.conftest import LiveServer, make_settings, unlimited_app
from tests.streams import open_stream, opened
from tests.world import World, build_world

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    async with unlimited_app(tmp_path_factory.mktemp("edge-http")) as application:
        yield application


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(app: FastAPI) -> AsyncIterator[World]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield await build_world(app, client)


def assert_nosniff(response: httpx.Response) -> None:
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], (
        response.status_code,
        response.headers,
    )


async def test_every_kind_of_response_carries_nosniff(world: World) -> None:
    conversation = world.conversations["alice"]
    messages = f"/api/v1/conversations/{conversation}/messages"
    responses = {
        "liveness": await world.call("alice", "GET", "/healthz"),
        "readiness": await world.call("alice", "GET", "/readyz"),
        "metrics": await world.call("alice", "GET", "/metrics"),
        "openapi": await world.call("alice", "GET", "/openapi.json"),
        "a page": await world.call("nobody", "GET", "/console"),
        "a static file": await world.call("nobody", "GET", "/static/stream.js"),
        "a route's JSON": await world.call("alice", "GET", "/api/v1/conversations"),
        "the message fast path": await world.send("alice", conversation, "hello", "m-nosniff-1"),
        "401": await world.call("nobody", "GET", "/api/v1/conversations"),
        "404": await world.call("alice", "GET", "/api/v1/no-such-thing"),
        "405": await world.call("alice", "DELETE", "/api/v1/conversations"),
        "413": await world.client.post(
            messages, content=b"x" * 70_000, headers={**world.auth("alice"), "Content-Type": "application/json"}
        ),
        "400 (not JSON)": await world.client.post(
            messages, content=b"{nope", headers={**world.auth("alice"), "Content-Type": "application/json"}
        ),
        "stream 401": await world.call("nobody", "GET", "/api/v1/events"),
        "preflight": await world.client.options(
            messages,
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        ),
        "cross-origin answer": await world.client.get(
            "/api/v1/conversations", headers={**world.auth("alice"), "Origin": "https://shop.example"}
        ),
    }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses["the message fast path"] == 201 and statuses["413"] == 413 and statuses["400 (not JSON)"] == 400
    assert statuses["preflight"] == 204 and statuses["stream 401"] == 401, statuses
    for response in responses.values():
        assert_nosniff(response)


async def test_the_event_stream_carries_nosniff(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("edge-stream")
    server = LiveServer(make_settings(f"sqlite:///{folder / 'h.db'}", demo=True, demo_password="edge-demo")).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            token = (await http.post("/api/v1/deployments/demo/sessions", json={})).json()["access_token"]
        async with open_stream(server.url, token) as stream:
            await opened(stream)
            assert_nosniff(stream.response)
    finally:
        server.stop()


BODIES: dict[str, tuple[bytes, int, str]] = {
    "not UTF-8": (b'{"id": "m1", "text": "caf\xe9"}', 400, "bad_request"),
    "UTF-16": ('{"id": "m1", "text": "hi"}'.encode("utf-16"), 400, "bad_request"),
    "truncated": (b'{"id": "m1", "text": "hi"', 400, "bad_request"),
    "NaN": (b'{"id": "m1", "text": NaN}', 400, "bad_request"),
    "Infinity": (b'{"id": "m1", "text": Infinity}', 400, "bad_request"),
    "a lone surrogate": (b'{"id": "m1", "text": "\\udc00"}', 400, "bad_request"),
    "JSON breaking the schema": (b'{"id": "m1", "text": 5}', 422, "validation_error"),
    "JSON with an unknown field": (b'{"id": "m1", "text": "hi", "x": 1}', 422, "validation_error"),
}


@pytest.mark.parametrize(("body", "status", "code"), BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("surface", ["message fast path", "a route behind FastAPI"])
async def test_not_json_is_400_and_json_breaking_the_schema_is_422(
    world: World, surface: str, body: bytes, status: int, code: str
) -> None:
    path = (
        f"/api/v1/conversations/{world.conversations['alice']}/messages"
        if surface == "message fast path"
        else f"/api/v1/conversations/{world.conversations['alice']}/typing"
    )
    response = await world.client.post(
        path, content=body, headers={**world.auth("alice"), "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code and response.json()["status"] == status
