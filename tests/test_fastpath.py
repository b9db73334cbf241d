"""``POST …/messages`` is answered ahead of FastAPI's stack, exactly as the stack would answer it.

Every request here goes twice: through the app as deployed (``HelplineApp``, whose dispatch takes the fast
path) and through FastAPI's own ``__call__`` (the full stack: middleware, routing, dependencies, the
route in conversations.py). Status, headers (in order) and body bytes must be identical, and a counter on
FastAPI's middleware stack shows which requests the fast path answered and which it handed over.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from helpline import create_app
from helpline.api import fastpath
from helpline.ratelimit import Limiter
from tests.conftest import LiveServer, make_settings, unlimited_app
from tests.streams import LiveWorld, messages, open_stream, opened
from tests.world import World, assign_to_trainee, build_world

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_BODY = 64 * 1024
SHOP = "https://shop.example"  # the world's deployment origin


# -- one app and world for the module; a client through the dispatch and one through FastAPI only --------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    async with unlimited_app(tmp_path_factory.mktemp("fastpath")) as application:
        yield application


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(app: FastAPI) -> AsyncIterator[World]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        built = await build_world(app, client)
        await built.customer("carol")  # carol's conversations go to the trainee
        yield built


def full_stack_of(app: FastAPI) -> Any:
    async def full_stack(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)  # no HelplineApp dispatch, so no fast path

    return full_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def full(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # The full stack re-raises an unexpected exception after its 500; keep the response instead.
    transport = httpx.ASGITransport(app=full_stack_of(app), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@dataclass
class Counts:
    stack: int = 0  # requests that entered FastAPI's middleware stack (either client)
    handed_over: int = 0  # requests the fast path gave to the full stack

    def reset(self) -> None:
        """Start counting here (after a test's setup requests)."""
        self.stack = self.handed_over = 0


@pytest.fixture
def counts(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Counts:
    counted = Counts()
    stack = app.middleware_stack
    assert stack is not None  # built by the world's first request
    endpoint = app.message_endpoint  # type: ignore[attr-defined]
    hand_over = endpoint.full_stack

    async def counting_stack(scope: Scope, receive: Receive, send: Send) -> None:
        counted.stack += 1
        await stack(scope, receive, send)

    async def counting_hand_over(scope: Scope, receive: Receive, send: Send) -> None:
        counted.handed_over += 1
        await hand_over(scope, receive, send)

    monkeypatch.setattr(app, "middleware_stack", counting_stack)
    monkeypatch.setattr(endpoint, "full_stack", counting_hand_over)
    return counted


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def messages_path(conversation: str) -> str:
    return f"/api/v1/conversations/{conversation}/messages"


@dataclass
class Post:
    """One request, sent the same way through either client."""

    who: str | None
    conversation: str
    content: Any
    content_type: str | None = "application/json"
    headers: dict[str, str] | None = None

    async def to(self, world: World, client: httpx.AsyncClient) -> httpx.Response:
        headers = world.auth(self.who) if self.who else {}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        headers.update(self.headers or {})
        content = self.content if isinstance(self.content, bytes) else json.dumps(self.content).encode()
        return await client.post(messages_path(self.conversation), content=content, headers=headers)


def assert_same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers.multi_items() == slow.headers.multi_items()
    assert fast.content == slow.content


async def fast_and_full(
    world: World, full: httpx.AsyncClient, counts: Counts, post: Post
) -> tuple[httpx.Response, httpx.Response, Counts]:
    """The fast answer, the full stack's answer, and what the fast request did (before the full one)."""
    before = Counts(counts.stack, counts.handed_over)
    fast = await post.to(world, world.client)
    taken = Counts(counts.stack - before.stack, counts.handed_over - before.handed_over)
    slow = await post.to(world, full)
    assert counts.stack == before.stack + taken.stack + 1  # the comparison did go through the stack
    return fast, slow, taken


ANSWERED = Counts(stack=0, handed_over=0)
HANDED_OVER = Counts(stack=1, handed_over=1)


async def stored_messages(world: World, conversation: str, who: str = "alice") -> list[dict[str, Any]]:
    response = await world.call(who, "GET", f"/api/v1/conversations/{conversation}/entries?limit=100")
    assert response.status_code == 200, response.text
    return [e for e in response.json()["entries"] if e["type"] == "conversation.message"]


async def fresh_conversation(world: World, customer: str = "alice", rep: str | None = "rep") -> str:
    conversation = await world.open_conversation(customer, id=unique("conv"))
    if rep is not None:
        await world.assign(conversation, rep)
    return conversation


# -- the happy path ------------------------------------------------------------------------------
async def test_a_message_is_answered_by_the_fast_path_with_the_routes_exact_bytes(
    app: FastAPI, world: World, full: httpx.AsyncClient, counts: Counts
) -> None:
    conversation = await fresh_conversation(world)
    registry = app.state.metrics.registry
    post = Post("alice", conversation, {"id": unique("m"), "text": "Where is my order?"})

    created_before = registry.get_sample_value("helpline_messages_stored_total")
    counts.reset()
    first = await post.to(world, world.client)
    retry = await post.to(world, world.client)
    assert (counts.stack, counts.handed_over) == (0, 0)  # FastAPI's stack never saw either request
    assert (first.status_code, retry.status_code) == (201, 200), first.text
    assert registry.get_sample_value("helpline_messages_stored_total") == created_before + 1  # once, when created

    via_route = await post.to(world, full)  # the same retry, answered by the route
    assert via_route.status_code == 200
    assert first.content == retry.content == via_route.content
    assert retry.headers.multi_items() == via_route.headers.multi_items()
    assert first.headers.multi_items() == [
        ("x-content-type-options", "nosniff"),  # every response (docs/protocol.md "Errors")
        ("content-length", str(len(first.content))),
        ("content-type", "application/json"),
    ]
    entry = first.json()
    assert list(entry)[:4] == ["id", "type", "conversation_id", "at"]
    assert (entry["type"], entry["message_id"], entry["text"]) == (
        "conversation.message",
        post.content["id"],
        post.content["text"],
    )
    assert entry["author"]["id"] == world.customer_ids["alice"]
    assert await stored_messages(world, conversation) == [entry]


async def test_a_message_created_by_the_route_is_returned_identically_by_the_fast_path(
    world: World, full: httpx.AsyncClient, counts: Counts
) -> None:
    conversation = await fresh_conversation(world)
    post = Post("rep", conversation, {"id": unique("r"), "text": "Let me check"})
    counts.reset()
    created = await post.to(world, full)
    again = await post.to(world, world.client)
    assert (created.status_code, again.status_code) == (201, 200)
    assert created.content == again.content
    assert counts.handed_over == 0 and counts.stack == 1


@pytest.mark.parametrize(
    "text",
    ["😀 é ü ß 中文", "tab\tnew\nline\r\u0001\u001f\u007f", "\u2028\u2029 \"quoted\" \\ / </script>", "   padded   ",
     "x" * 10_000],
    ids=["non-ASCII", "control characters", "separators and escapes", "padded", "10,000 characters"],
)  # fmt: skip
async def test_any_text_is_serialized_byte_for_byte_as_the_route_does(
    world: World, full: httpx.AsyncClient, counts: Counts, text: str
) -> None:
    conversation = world.conversations["alice"]
    post = Post("alice", conversation, json.dumps({"id": unique("m"), "text": text}, ensure_ascii=False).encode())
    first = await post.to(world, world.client)
    via_route = await post.to(world, full)
    assert (first.status_code, via_route.status_code) == (201, 200), first.text
    assert first.content == via_route.content
    assert first.json()["text"] == text
    assert counts.handed_over == 0


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json ;x=y"]
)
async def test_json_with_parameters_or_another_case_takes_the_fast_path(
    world: World, counts: Counts, content_type: str
) -> None:
    post = Post("alice", world.conversations["alice"], {"id": unique("m"), "text": "hi"}, content_type)
    response = await post.to(world, world.client)
    assert response.status_code == 201, response.text
    assert (counts.stack, counts.handed_over) == (0, 0)


async def test_a_body_in_several_chunks_is_read_whole(world: World, counts: Counts) -> None:
    message_id = unique("m")
    body = json.dumps({"id": message_id, "text": "y" * 9_000}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    headers = {**world.auth("alice"), "Content-Type": "application/json"}
    response = await world.client.post(messages_path(world.conversations["alice"]), content=chunks(), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["message_id"] == message_id
    assert (counts.stack, counts.handed_over) == (0, 0)


# -- errors the fast path answers itself, as the route's error handler would -------------------------
async def closed_conversation(world: World) -> str:
    conversation = await fresh_conversation(world)
    closed = await world.call("alice", "POST", f"/api/v1/conversations/{conversation}/close")
    assert closed.status_code == 200, closed.text
    return conversation


async def trainees_conversation(app: FastAPI, world: World) -> str:
    conversation = await fresh_conversation(world, customer="carol", rep=None)
    await assign_to_trainee(app, world, conversation)
    return conversation


ANSWERED_ERRORS: dict[str, tuple[str | None, str, dict[str, str], int]] = {
    # name: (caller, whose conversation, extra headers, status)
    "no Authorization header": (None, "alice", {}, 401),
    "a token that is garbage": (None, "alice", {"Authorization": "Bearer not-a-token"}, 401),
    "Basic credentials": (None, "alice", {"Authorization": "Basic cmVwOmNvcnJlY3QtaG9yc2U="}, 401),
    "a blank bearer token": (None, "alice", {"Authorization": "Bearer   "}, 401),
    "another customer's conversation": ("bob", "alice", {}, 404),
    "a rep not assigned to it": ("rep2", "alice", {}, 404),
    "an unknown conversation": ("alice", "missing", {}, 404),
    "a supervisor (no chat_rep)": ("supervisor", "alice", {}, 403),
    "staff without chat_user": ("nochat", "alice", {}, 403),
    "a trainee without access_conversation_entries": ("trainee", "trainee", {}, 403),
    "a closed conversation": ("alice", "closed", {}, 409),
}


@pytest.mark.parametrize("case", ANSWERED_ERRORS.values(), ids=ANSWERED_ERRORS.keys())
async def test_refusals_are_answered_by_the_fast_path_exactly_as_by_the_route(
    app: FastAPI,
    world: World,
    full: httpx.AsyncClient,
    counts: Counts,
    case: tuple[str | None, str, dict[str, str], int],
) -> None:
    who, whose, headers, status = case
    if whose == "trainee":
        conversation = await trainees_conversation(app, world)
    elif whose == "closed":
        conversation = await closed_conversation(world)
    else:
        conversation = unique("conv-missing") if whose == "missing" else world.conversations["alice"]
    before = await stored_messages(world, conversation, "supervisor") if whose != "missing" else []
    post = Post(who, conversation, {"id": unique("m"), "text": "hello?"}, headers=headers)
    fast, slow, taken = await fast_and_full(world, full, counts, post)
    assert taken == ANSWERED
    assert fast.status_code == status, fast.text
    assert fast.headers["content-type"] == "application/problem+json"
    assert_same(fast, slow)
    if status == 401:
        assert fast.headers["www-authenticate"] == "Bearer"
    if whose != "missing":
        assert await stored_messages(world, conversation, "supervisor") == before


async def test_a_message_id_used_by_someone_else_is_the_same_conflict(
    world: World, full: httpx.AsyncClient, counts: Counts
) -> None:
    conversation = await fresh_conversation(world)
    message_id = unique("m")
    assert (await Post("alice", conversation, {"id": message_id, "text": "mine"}).to(world, world.client)).is_success
    fast, slow, taken = await fast_and_full(
        world, full, counts, Post("rep", conversation, {"id": message_id, "text": "x"})
    )
    assert taken == ANSWERED and fast.status_code == 409
    assert_same(fast, slow)


async def test_rate_limiting_is_the_same_429_and_counts_each_request_once(
    app: FastAPI, world: World, full: httpx.AsyncClient, counts: Counts, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = world.conversations["alice"]
    monkeypatch.setattr(app.state.services, "rate_limiter", Limiter(2))
    # A body the fast path hands over is authenticated (and counted) by the full stack only, once.
    invalid = await Post("alice", conversation, {"id": unique("m"), "text": ""}).to(world, world.client)
    assert invalid.status_code == 422 and counts.handed_over == 1
    sent = await Post("alice", conversation, {"id": unique("m"), "text": "one"}).to(world, world.client)
    assert sent.status_code == 201, sent.text  # the second of two allowed
    fast, slow, taken = await fast_and_full(
        world, full, counts, Post("alice", conversation, {"id": "m", "text": "two"})
    )
    assert taken == ANSWERED and fast.status_code == 429
    assert fast.headers["retry-after"] == "30"  # a token every 30 s
    assert_same(fast, slow)


async def test_an_unexpected_error_is_the_same_bare_500_and_is_logged(
    app: FastAPI,
    world: World,
    full: httpx.AsyncClient,
    counts: Counts,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(app.state.services.conversations, "post_message", broken)
    post = Post("alice", world.conversations["alice"], {"id": unique("m"), "text": "hi"}, headers={"Origin": SHOP})
    with caplog.at_level(logging.ERROR, logger="helpline.api"):
        fast, slow, taken = await fast_and_full(world, full, counts, post)
    assert taken == ANSWERED and fast.status_code == 500
    assert fast.json()["code"] == "internal_error"
    assert "fire" not in fast.text and "Traceback" not in fast.text
    assert "access-control-allow-origin" not in fast.headers  # a 500 comes from outside the CORS layer
    assert_same(fast, slow)
    logged = [r for r in caplog.records if r.name == "helpline.api" and r.exc_info]
    assert len(logged) == 2 and all("fire" in str(r.exc_info[1]) for r in logged if r.exc_info)


# -- requests handed to the full stack, which answers with its own error ---------------------------
HANDED_OVER_BODIES: dict[str, tuple[Any, str | None, int]] = {
    # name: (body, content type, status)
    "unknown field": ({"id": "m1", "text": "hi", "priority": "high"}, "application/json", 422),
    "id is an int": ({"id": 5, "text": "hi"}, "application/json", 422),
    "text is a list": ({"id": "m1", "text": ["hi"]}, "application/json", 422),
    "empty text": ({"id": "m1", "text": ""}, "application/json", 422),
    "text of 10,001 characters": ({"id": "m1", "text": "x" * 10_001}, "application/json", 422),
    "id with a space": ({"id": "m 1", "text": "hi"}, "application/json", 422),
    "a NUL in the text": ({"id": "m1", "text": "a\x00b"}, "application/json", 422),
    "body is a list": ([{"id": "m1", "text": "hi"}], "application/json", 422),
    "empty body": (b"", "application/json", 422),
    # Not JSON, or not UTF-8: 400 bad_request (docs/protocol.md "Errors"); JSON that breaks the schema: 422.
    "truncated JSON": (b'{"id": "m1", "text": ', "application/json", 400),
    "trailing garbage": (b'{"id": "m1", "text": "hi"} and more', "application/json", 400),
    "not UTF-8": (b'{"id": "m1", "text": "\xff\xfe"}', "application/json", 400),
    "a lone surrogate": (b'{"id": "m1", "text": "\\ud800"}', "application/json", 400),
    "NaN": (b'{"id": "m1", "text": NaN}', "application/json", 400),
    "plain text holding JSON": ({"id": "m1", "text": "hi"}, "text/plain", 422),
    "a form": (b"id=m1&text=hi", "application/x-www-form-urlencoded", 422),
    "no content type": ({"id": "m1", "text": "hi"}, None, 422),
}


@pytest.mark.parametrize("case", HANDED_OVER_BODIES.values(), ids=HANDED_OVER_BODIES.keys())
async def test_a_body_the_fast_path_does_not_take_gets_the_full_stacks_answer(
    world: World, full: httpx.AsyncClient, counts: Counts, case: tuple[Any, str | None, int]
) -> None:
    content, content_type, status = case
    conversation = world.conversations["alice"]
    before = await stored_messages(world, conversation)
    fast, slow, taken = await fast_and_full(world, full, counts, Post("alice", conversation, content, content_type))
    assert taken == HANDED_OVER
    assert fast.status_code == status, fast.text
    assert_same(fast, slow)
    assert await stored_messages(world, conversation) == before


async def test_json_of_another_type_is_handed_over_and_still_stored(world: World, counts: Counts) -> None:
    # FastAPI parses any application/*+json; the fast path leaves those rare types to it.
    post = Post(
        "alice", world.conversations["alice"], {"id": unique("m"), "text": "hi"}, "application/merge-patch+json"
    )
    response = await post.to(world, world.client)
    assert response.status_code == 201, response.text
    assert counts.handed_over == 1


async def test_a_body_that_fails_validation_is_still_refused_first_for_a_bad_token(
    world: World, full: httpx.AsyncClient, counts: Counts
) -> None:
    post = Post(None, world.conversations["alice"], {"id": 5}, headers={"Authorization": "Bearer nope"})
    fast, slow, taken = await fast_and_full(world, full, counts, post)
    assert taken == HANDED_OVER and fast.status_code == 401  # as the route: dependencies before the body
    assert_same(fast, slow)


def oversized_message(size: int) -> bytes:
    skeleton = b'{"id":"big","text":""}'
    return skeleton[:-2] + b"x" * (size - len(skeleton)) + skeleton[-2:]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_the_cap_gets_the_full_stacks_413(
    world: World, full: httpx.AsyncClient, counts: Counts, framing: str
) -> None:
    body = oversized_message(MAX_BODY + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    responses = []
    for client in (world.client, full):
        content: Any = body if framing == "content-length" else chunks()
        headers = {**world.auth("alice"), "Content-Type": "application/json"}
        responses.append(
            await client.post(messages_path(world.conversations["alice"]), content=content, headers=headers)
        )
    fast, slow = responses
    assert fast.status_code == 413 and counts.handed_over == 1
    assert_same(fast, slow)


async def test_a_content_length_that_is_not_a_number_gets_the_full_stacks_400(
    world: World, full: httpx.AsyncClient, counts: Counts
) -> None:
    post = Post("alice", world.conversations["alice"], {"id": "m", "text": "x"}, headers={"Content-Length": "12abc"})
    fast, slow, taken = await fast_and_full(world, full, counts, post)
    assert taken == HANDED_OVER and fast.status_code == 400
    assert_same(fast, slow)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/conversations/" + "c" * 65 + "/messages"),  # over the route's max_length: 422
        ("POST", "/api/v1/conversations/a/b/messages"),
        ("POST", "/api/v1/conversations//messages"),
        ("POST", "/api/v1/conversations/c/messages/"),
        ("PUT", "/api/v1/conversations/c/messages"),
        ("GET", "/api/v1/conversations/c/messages"),
    ],
)
async def test_other_paths_and_methods_never_reach_the_fast_path(
    world: World, full: httpx.AsyncClient, counts: Counts, method: str, path: str
) -> None:
    headers = {**world.auth("alice"), "Content-Type": "application/json"}
    body = b'{"id": "m1", "text": "hi"}'
    fast = await world.client.request(method, path, content=body, headers=headers)
    assert (counts.stack, counts.handed_over) == (1, 0)
    slow = await full.request(method, path, content=body, headers=headers)
    assert fast.status_code >= 300
    assert_same(fast, slow)


async def test_the_match_is_exactly_the_routes_path() -> None:
    def scope(path: str, **extra: Any) -> Scope:
        return {"type": "http", "method": "POST", "path": path, "root_path": "", **extra}

    assert fastpath.is_message_post(scope("/api/v1/conversations/conv-1/messages"))
    assert fastpath.is_message_post(scope("/api/v1/conversations/" + "é" * 64 + "/messages"))
    assert not fastpath.is_message_post(scope("/api/v1/conversations/conv-1/messages\n"))
    assert not fastpath.is_message_post(scope("/api/v1/conversations/conv-1/messages", root_path="/helpline"))
    assert not fastpath.is_message_post(scope("/api/v1/conversations/conv-1/messages", method="OPTIONS"))
    assert not fastpath.is_message_post({"type": "websocket", "path": "/api/v1/conversations/c/messages"})


async def test_before_the_lifespan_everything_is_handed_over(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'idle.db'}"))
    handed: list[Scope] = []

    async def full_stack(scope: Scope, receive: Receive, send: Send) -> None:
        handed.append(scope)
        await FastAPI.__call__(app, scope, receive, send)

    app.message_endpoint.full_stack = full_stack  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(messages_path("c"), json={"id": "m", "text": "hi"})
    assert len(handed) == 1
    assert response.status_code == 500 and response.json()["code"] == "internal_error"


async def test_what_was_read_is_replayed_in_order_and_reading_stops_at_the_cap(app: FastAPI) -> None:
    endpoint = app.message_endpoint  # type: ignore[attr-defined]
    half = b"x" * (MAX_BODY // 2 + 1)
    script: list[Message] = [
        {"type": "http.request", "body": b'{"id":"big","text":"', "more_body": True},
        {"type": "http.request", "body": half, "more_body": True},
        {"type": "http.request", "body": half, "more_body": True},  # crosses the cap
        {"type": "http.request", "body": b'"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    remaining = list(script)
    seen_by_full_stack: list[Message] = []
    read_before_hand_over = 0

    async def receive() -> Message:
        return remaining.pop(0)

    async def full_stack(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal read_before_hand_over
        read_before_hand_over = len(script) - len(remaining)
        for _ in script:
            seen_by_full_stack.append(await receive())

    async def send(message: Message) -> None:
        raise AssertionError(f"the fast path answered: {message}")

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": messages_path("c"),
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "app": app,
    }
    original = endpoint.full_stack
    endpoint.full_stack = full_stack
    try:
        await endpoint(scope, receive, send)
    finally:
        endpoint.full_stack = original
    assert read_before_hand_over == 3
    assert seen_by_full_stack == script


# -- CORS ------------------------------------------------------------------------------------------
async def test_an_allowed_origin_gets_cors_headers_on_the_fast_path(
    world: World, full: httpx.AsyncClient, counts: Counts
) -> None:
    conversation = await fresh_conversation(world)
    post = Post("alice", conversation, {"id": unique("m"), "text": "from the shop"}, headers={"Origin": SHOP})
    fast, slow, taken = await fast_and_full(world, full, counts, post)  # 201, then the route's 200
    assert taken == ANSWERED and (fast.status_code, slow.status_code) == (201, 200)
    assert fast.headers["access-control-allow-origin"] == SHOP
    assert fast.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in fast.headers
    assert fast.content == slow.content
    assert fast.headers.multi_items() == slow.headers.multi_items()

    refused = Post(None, conversation, {"id": unique("m"), "text": "x"}, headers={"Origin": SHOP})
    fast, slow, taken = await fast_and_full(world, full, counts, refused)
    assert taken == ANSWERED and fast.status_code == 401
    assert fast.headers["access-control-allow-origin"] == SHOP
    assert_same(fast, slow)


async def test_another_origin_gets_no_cors_headers(world: World, full: httpx.AsyncClient, counts: Counts) -> None:
    conversation = await fresh_conversation(world)
    post = Post("alice", conversation, {"id": unique("m"), "text": "hi"}, headers={"Origin": "https://evil.example"})
    fast, slow, taken = await fast_and_full(world, full, counts, post)
    assert taken == ANSWERED and fast.status_code == 201
    assert "access-control-allow-origin" not in fast.headers
    assert fast.headers.multi_items() == slow.headers.multi_items()


# -- over a real socket: stored, delivered live, and the route never involved -----------------------
DEMO_PASSWORD = "demo-password-123"


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(f"sqlite:///{tmp_path / 'live.db'}", demo=True, demo_password=DEMO_PASSWORD)
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(60)
async def test_messages_are_stored_and_delivered_live_over_a_real_socket(demo_server: LiveServer) -> None:
    endpoint = demo_server.app.message_endpoint  # type: ignore[attr-defined]
    hand_over = endpoint.full_stack
    handed: list[str] = []

    async def counting_hand_over(scope: Scope, receive: Receive, send: Send) -> None:
        handed.append(scope["path"])
        await hand_over(scope, receive, send)

    endpoint.full_stack = counting_hand_over
    async with LiveWorld(demo_server.url, DEMO_PASSWORD) as world:
        customer = await world.customer("alice")
        conversation = await world.conversation("alice", "c-fast", rep="rep")
        async with (
            open_stream(world.base_url, customer) as alices,
            open_stream(world.base_url, world.tokens["rep"]) as reps,
        ):
            await opened(alices)
            await opened(reps)
            sent = [
                await world.send("alice", conversation, "hello", "m1"),
                await world.send("rep", conversation, "hi!", "r1"),
            ]
            for stream in (alices, reps):
                events = await stream.until(
                    lambda e: e.event == "conversation.message" and e.json()["message_id"] == "r1"
                )
                assert [m for m in messages(events) if m["message_id"] in ("m1", "r1")] == sent
        entries = await world.http.get(
            f"/api/v1/conversations/{conversation}/entries", headers={"Authorization": f"Bearer {customer}"}
        )
        stored = [e for e in entries.json()["entries"] if e.get("message_id") in ("m1", "r1")]
        assert stored == sent
        assert handed == []
        oversized = await world.http.post(
            messages_path(conversation),
            content=oversized_message(MAX_BODY + 1),
            headers={"Authorization": f"Bearer {customer}", "Content-Type": "application/json"},
        )
        assert oversized.status_code == 413 and handed == [messages_path(conversation)]
