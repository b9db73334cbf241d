"""Hostile and careless input: precise 4xx problems, never a 500, never a traceback; and idempotent retries.

docs/protocol.md "Errors" and "Conversations": request models are strict (unknown fields, coercions and
out-of-range values are a 422 ``validation_error``), a body over 64 KiB is a 413 ``payload_too_large``
whether or not it announces its size, and a message acknowledged with 2xx is stored exactly once, however
many times (and however concurrently) the client retries it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from helpline import create_app
from tests.conftest import make_settings, unlimited_app
from tests.world import World, build_world

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_BODY = 64 * 1024
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


# -- one app and world for the module (building a world hashes a dozen passwords) ----------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    async with unlimited_app(tmp_path_factory.mktemp("bad-input")) as application:
        yield application


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(app: FastAPI) -> AsyncIterator[World]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield await build_world(app, client)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def fresh_conversation(world: World, *, assigned_to: str | None = None) -> str:
    conversation = await world.open_conversation("alice", id=unique("conv"))
    if assigned_to:
        await world.assign(conversation, assigned_to)
    return conversation


async def stored_messages(world: World, conversation: str) -> list[dict[str, Any]]:
    response = await world.call("alice", "GET", f"/api/v1/conversations/{conversation}/entries?limit=100")
    assert response.status_code == 200, response.text
    return [e for e in response.json()["entries"] if e["type"] == "conversation.message"]


def assert_no_leak(response: httpx.Response) -> None:
    """Never a 5xx, never a stack trace or an exception's repr in the body."""
    assert response.status_code < 500, response.text
    for telltale in ("Traceback", 'File "', "Exception", "Error:"):
        assert telltale not in response.text, response.text


def assert_problem(response: httpx.Response, status: int | tuple[int, ...], code: str) -> dict[str, Any]:
    assert_no_leak(response)
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert PROBLEM_FIELDS <= body.keys(), body
    assert (body["status"], body["code"]) == (response.status_code, code), body
    return body


async def post_raw(world: World, who: str, path: str, content: Any, content_type: str | None) -> httpx.Response:
    headers = world.auth(who)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await world.client.post(path, content=content, headers=headers)


# -- messages that break the contract ------------------------------------------------------------
INVALID_MESSAGES: dict[str, Any] = {
    "unknown field": {"id": "m1", "text": "hi", "priority": "high"},
    "id is an int": {"id": 5, "text": "hi"},
    "text is an int": {"id": "m1", "text": 1},
    "text is null": {"id": "m1", "text": None},
    "text is a list": {"id": "m1", "text": ["hi"]},
    "text is an object": {"id": "m1", "text": {"value": "hi"}},
    "id missing": {"text": "hi"},
    "text missing": {"id": "m1"},
    "empty text": {"id": "m1", "text": ""},
    "text of 10,001 characters": {"id": "m1", "text": "x" * 10_001},
    "empty id": {"id": "", "text": "hi"},
    "id with a space": {"id": "m 1", "text": "hi"},
    "id of 65 characters": {"id": "m" * 65, "text": "hi"},
    "id with a semicolon": {"id": "m;1", "text": "hi"},
    "id with a slash": {"id": "../m1", "text": "hi"},
    "id with a non-ASCII letter": {"id": "mé1", "text": "hi"},
    "id with a newline": {"id": "m1\n", "text": "hi"},
    "body is a list": [{"id": "m1", "text": "hi"}],
    "body is a string": "hi",
    "body is a number": 5,
    "body is null": None,
}


@pytest.mark.parametrize("body", INVALID_MESSAGES.values(), ids=INVALID_MESSAGES.keys())
async def test_a_message_that_breaks_the_contract_is_422_and_not_stored(world: World, body: Any) -> None:
    conversation = world.conversations["alice"]
    before = await stored_messages(world, conversation)
    response = await world.client.post(
        f"/api/v1/conversations/{conversation}/messages",
        content=json.dumps(body).encode(),
        headers={**world.auth("alice"), "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation_error")
    assert await stored_messages(world, conversation) == before


@pytest.mark.parametrize(
    "text",
    ["x" * 10_000, "é" * 10_000, "😀" * 10_000, "line one\nline two\ttabbed", "   padded   "],
    ids=["10,000 ASCII", "10,000 two-byte", "10,000 emoji (40 KB of UTF-8)", "control whitespace", "padded"],
)
async def test_a_text_within_the_limits_is_stored_as_sent(world: World, text: str) -> None:
    conversation = world.conversations["alice"]
    message_id = unique("m")
    body = json.dumps({"id": message_id, "text": text}, ensure_ascii=False).encode()
    response = await post_raw(
        world, "alice", f"/api/v1/conversations/{conversation}/messages", body, "application/json"
    )
    assert response.status_code == 201, response.text
    stored = [m for m in await stored_messages(world, conversation) if m["message_id"] == message_id]
    assert [m["text"] for m in stored] == [text]


# -- every other request model is as strict ------------------------------------------------------
def conversation_path(world: World, suffix: str) -> str:
    return f"/api/v1/conversations/{world.conversations['alice']}{suffix}"


FIFTY_ONE = [f"field{i}" for i in range(51)]
STRICT_CASES: dict[str, tuple[str, str, str, Any]] = {
    # name: (caller, method, path (with {alice} for alice's conversation), body)
    "receipt entry_id as a string": ("alice", "POST", "{alice}/receipts", {"type": "read", "entry_id": "5"}),
    "receipt entry_id as a float": ("alice", "POST", "{alice}/receipts", {"type": "read", "entry_id": 1.0}),
    "receipt entry_id as a boolean": ("alice", "POST", "{alice}/receipts", {"type": "read", "entry_id": True}),
    "receipt entry_id of 0": ("alice", "POST", "{alice}/receipts", {"type": "read", "entry_id": 0}),
    "receipt entry_id of 2**63": ("alice", "POST", "{alice}/receipts", {"type": "read", "entry_id": 2**63}),
    "receipt of an unknown type": ("alice", "POST", "{alice}/receipts", {"type": "seen", "entry_id": 1}),
    "typing state unknown": ("alice", "POST", "{alice}/typing", {"state": "typing"}),
    "typing state as an int": ("alice", "POST", "{alice}/typing", {"state": 1}),
    "typing with an unknown field": ("alice", "POST", "{alice}/typing", {"state": "started", "at": "now"}),
    "transfer to nobody": ("rep", "POST", "{alice}/transfer", {}),
    "transfer to a user and a queue": ("rep", "POST", "{alice}/transfer", {"to_user_id": "u", "to_queue_id": "q"}),
    "transfer to an int": ("rep", "POST", "{alice}/transfer", {"to_user_id": 5}),
    "assign to an empty id": ("supervisor", "POST", "{alice}/assign", {"user_id": ""}),
    "conversation id with a space": ("alice", "POST", "/api/v1/conversations", {"id": "my conversation"}),
    "conversation id as an int": ("alice", "POST", "/api/v1/conversations", {"id": 5}),
    "pre_chat value as an int": ("alice", "POST", "/api/v1/conversations", {"pre_chat": {"order": 5}}),
    "pre_chat as a string": ("alice", "POST", "/api/v1/conversations", {"pre_chat": "order 5"}),
    "pre_chat with 51 fields": ("alice", "POST", "/api/v1/conversations", {"pre_chat": dict.fromkeys(FIFTY_ONE, "")}),
    "conversation with an unknown field": ("alice", "POST", "/api/v1/conversations", {"topic": "billing"}),
    "presence status unknown": ("rep", "PUT", "/api/v1/me/presence", {"status": "invisible"}),
    "presence status as a boolean": ("rep", "PUT", "/api/v1/me/presence", {"status": True}),
    "login username as an int": ("anonymous", "POST", "/api/v1/auth/login", {"username": 5, "password": "x"}),
    "login without a password": ("anonymous", "POST", "/api/v1/auth/login", {"username": "rep"}),
    "session email malformed": ("anonymous", "POST", "/api/v1/deployments/web/sessions", {"email": "not-an-email"}),
    "session display_name as an int": ("anonymous", "POST", "/api/v1/deployments/web/sessions", {"display_name": 1}),
    "session with an unknown field": ("anonymous", "POST", "/api/v1/deployments/web/sessions", {"name": "Al"}),
    "session deployment key with a dot": ("anonymous", "POST", "/api/v1/deployments/a.b/sessions", {}),
    "user max_concurrent as a string": (
        "admin", "POST", "/api/v1/admin/users",
        {"username": "u1", "password": "long-enough", "permissions": [], "max_concurrent": "5"},
    ),
    "user with an unknown permission": (
        "admin", "POST", "/api/v1/admin/users", {"username": "u1", "password": "long-enough", "permissions": ["root"]},
    ),
    "user with a short password": (
        "admin", "POST", "/api/v1/admin/users", {"username": "u1", "password": "short", "permissions": []},
    ),
    "username with a space": (
        "admin", "POST", "/api/v1/admin/users", {"username": "a b", "password": "long-enough", "permissions": []},
    ),
    "user disabled as a string": ("admin", "PATCH", "/api/v1/admin/users/{rep}", {"disabled": "yes"}),
    "user patch with an unknown field": ("admin", "PATCH", "/api/v1/admin/users/{rep}", {"is_admin": True}),
    "queue name empty": ("admin", "POST", "/api/v1/admin/queues", {"name": ""}),
    "queue name with a space": ("admin", "POST", "/api/v1/admin/queues", {"name": "first line"}),
    "deployment origin not http": (
        "admin", "POST", "/api/v1/admin/deployments",
        {"key": "k1", "queue": "support", "allowed_origins": ["javascript:alert(1)"]},
    ),
    "deployment identity key too short": (
        "admin", "POST", "/api/v1/admin/deployments",
        {"key": "k1", "queue": "support", "allowed_origins": [], "identity_key": "short"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", STRICT_CASES.values(), ids=STRICT_CASES.keys())
async def test_strict_request_models_refuse_coercion_and_unknown_fields(
    world: World, case: tuple[str, str, str, Any]
) -> None:
    who, method, path, body = case
    path = path.replace("{alice}", f"/api/v1/conversations/{world.conversations['alice']}")
    path = path.replace("{rep}", world.user_ids["rep"])
    response = await world.call(who, method, path, body)
    assert_problem(response, 422, "validation_error")


# -- request bodies over 64 KiB ------------------------------------------------------------------
def oversized_message(size: int) -> bytes:
    """A message body of exactly ``size`` bytes (its text is far over the limit, but size is checked first)."""
    skeleton = b'{"id":"big","text":""}'
    return skeleton[:-2] + b"x" * (size - len(skeleton)) + skeleton[-2:]


async def chunks(body: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_64_kib_is_413(world: World, framing: str) -> None:
    conversation = world.conversations["alice"]
    body = oversized_message(MAX_BODY + 1)
    content = body if framing == "content-length" else chunks(body)
    response = await post_raw(world, "alice", conversation_path(world, "/messages"), content, "application/json")
    assert_problem(response, 413, "payload_too_large")
    assert "big" not in {m["message_id"] for m in await stored_messages(world, conversation)}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_of_exactly_64_kib_is_read(world: World, framing: str) -> None:
    body = oversized_message(MAX_BODY)
    content = body if framing == "content-length" else chunks(body)
    response = await post_raw(world, "alice", conversation_path(world, "/messages"), content, "application/json")
    assert_problem(response, 422, "validation_error")  # read and validated: the text is over 10,000 characters


async def test_a_huge_body_is_refused_for_every_caller_before_authentication(world: World) -> None:
    body = oversized_message(10 * MAX_BODY)
    response = await world.client.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "payload_too_large")


# -- bodies that are not the JSON we expect, on every operation that takes one -------------------
def operations_with_bodies(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]


OPERATIONS_WITH_BODIES = operations_with_bodies(create_app(make_settings("sqlite:///:memory:")))

MALFORMED_JSON: dict[str, bytes] = {
    "empty": b"",
    "truncated": b'{"id": "m1", "text": ',
    "trailing garbage": b'{"id": "m1", "text": "hi"} and more',
    "single quotes": b"{'id': 'm1', 'text': 'hi'}",
    "not UTF-8": b'{"id": "m1", "text": "\xff\xfe"}',
    "a lone surrogate": b'{"id": "m1", "text": "\\ud800"}',
    "NaN": b'{"id": "m1", "text": NaN, "entry_id": NaN}',
    "an integer of 5,000 digits": b'{"entry_id": ' + b"9" * 5000 + b"}",
    "a float overflowing to infinity": b'{"entry_id": 1e400}',
    "nested 20,000 deep": b"[" * 20_000 + b"]" * 20_000,
    "a NUL byte": b"\x00",
}


def operation_path(world: World, template: str) -> str:
    return template.format(
        conversation_id=world.conversations["alice"],
        deployment_key=world.deployment_key,
        user_id=world.user_ids["rep2"],
        offer_id="offer-1",
        deployment_id=world.deployment_id,
        # Ids that exist nowhere: a malformed body must be refused before any lookup of them.
        webhook_id="wh-1",
        delivery_id="1",
        key_id="key-1",
        queue_id=world.queue_id,
        canned_id="canned-1",
        attachment_id="att_" + "0" * 32,
    )


def caller_for(path: str) -> str:
    if path.startswith("/api/v1/admin/"):
        return "admin"
    staff_only = ("/api/v1/me/", "/api/v1/offers/", "/api/v1/canned-responses")
    return "rep" if path.startswith(staff_only) or path.endswith("/notes") else "alice"


# JSON that parses but breaks every schema: a missing body, a float that overflows to infinity.
SCHEMA_ERRORS = {"empty", "a float overflowing to infinity"}


@pytest.mark.parametrize(("name", "body"), MALFORMED_JSON.items(), ids=MALFORMED_JSON.keys())
@pytest.mark.parametrize("operation", OPERATIONS_WITH_BODIES, ids=[" ".join(op) for op in OPERATIONS_WITH_BODIES])
async def test_malformed_json_is_a_client_error(
    world: World, operation: tuple[str, str], name: str, body: bytes
) -> None:
    """docs/protocol.md "Errors": a body that is not JSON or not UTF-8 is 400 ``bad_request``; JSON that
    breaks the schema is 422 ``validation_error``."""
    method, template = operation
    path = operation_path(world, template)
    headers = {**world.auth(caller_for(template)), "Content-Type": "application/json"}
    response = await world.client.request(method, path, content=body, headers=headers)
    if name in SCHEMA_ERRORS:
        assert_problem(response, 422, "validation_error")
    else:
        assert_problem(response, 400, "bad_request")


NOT_JSON: dict[str, tuple[bytes, str | None]] = {
    "a form": (b"id=m1&text=hi", "application/x-www-form-urlencoded"),
    "plain text holding JSON": (b'{"id": "m1", "text": "hi"}', "text/plain"),
    "XML": (b"<message id='m1'>hi</message>", "application/xml"),
    "multipart": (b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--b--\r\n', "multipart/form-data"),
    "no content type": (b'{"id": "m1", "text": "hi"}', None),
}


@pytest.mark.parametrize(("content", "content_type"), NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_body_that_is_not_json_is_422_and_not_stored(
    world: World, content: bytes, content_type: str | None
) -> None:
    conversation = world.conversations["alice"]
    before = await stored_messages(world, conversation)
    response = await post_raw(world, "alice", conversation_path(world, "/messages"), content, content_type)
    assert_problem(response, 422, "validation_error")
    assert await stored_messages(world, conversation) == before


# -- query strings and paths ---------------------------------------------------------------------
HUGE = "9" * 60_000  # the longest URL an HTTP client will build is 64 KiB

QUERIES: dict[str, tuple[str, int]] = {
    # name: (path and query, the status it gets)
    "limit of 0": ("/api/v1/conversations?limit=0", 422),
    "limit of 101": ("/api/v1/conversations?limit=101", 422),
    "limit as a word": ("/api/v1/conversations?limit=ten", 422),
    "limit as a float": ("/api/v1/conversations?limit=1.5", 422),
    "limit of 60,000 digits": (f"/api/v1/conversations?limit={HUGE}", 422),
    "unknown status": ("/api/v1/conversations?status=open", 422),
    "status of 60,000 characters": (f"/api/v1/conversations?status={HUGE}", 422),
    "cursor that is not base64 JSON": ("/api/v1/conversations?cursor=abc", 422),
    "cursor holding the wrong JSON": ("/api/v1/conversations?cursor=WyJ4IiwgMV0", 422),
    "cursor of 60,000 characters": (f"/api/v1/conversations?cursor={HUGE}", 422),
    "entries after -1": ("{alice}/entries?after=-1", 422),
    "entries after 2**63": ("{alice}/entries?after=9223372036854775808", 422),
    "entries after 60,000 digits": (f"{{alice}}/entries?after={HUGE}", 422),
    "entries after and before": ("{alice}/entries?after=1&before=5", 422),
    "entries limit of 1,000": ("{alice}/entries?limit=1000", 422),
    "poll timeout over 30": ("/api/v1/events/poll?timeout=31", 422),
    "poll timeout NaN": ("/api/v1/events/poll?timeout=nan", 422),
    "poll timeout infinite": ("/api/v1/events/poll?timeout=inf", 422),
    "poll timeout negative": ("/api/v1/events/poll?timeout=-1", 422),
    "poll after of 60,000 digits": (f"/api/v1/events/poll?timeout=0&after={HUGE}", 422),
    "poll after that is no event id": ("/api/v1/events/poll?timeout=0&after=abc", 200),  # a stream.reset
    "conversation id of 60,000 characters": (f"/api/v1/conversations/{HUGE}", 422),
    "user id of 60,000 characters": (f"/api/v1/admin/users/{HUGE}", 422),
    "10,000 unknown parameters": ("/api/v1/conversations?" + "&".join(["x=1"] * 10_000), 200),
    "an unknown parameter of 60,000 characters": (f"/healthz?x={HUGE}", 200),
}


@pytest.mark.parametrize(("path", "status"), QUERIES.values(), ids=QUERIES.keys())
async def test_query_and_path_values_are_validated(world: World, path: str, status: int) -> None:
    path = path.replace("{alice}", f"/api/v1/conversations/{world.conversations['alice']}")
    who = "admin" if path.startswith("/api/v1/admin/") else "alice"
    response = await world.call(who, "GET", path)
    assert_no_leak(response)
    if status >= 400:
        assert_problem(response, status, "validation_error")
    else:
        assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/no-such-thing", 404, "not_found"),
        ("DELETE", "/api/v1/conversations", 405, "method_not_allowed"),
        ("PUT", "/api/v1/auth/login", 405, "method_not_allowed"),
    ],
)
async def test_an_unknown_path_or_method_is_a_problem_too(
    world: World, method: str, path: str, status: int, code: str
) -> None:
    response = await world.call("alice", method, path)
    assert_problem(response, status, code)


# -- idempotency ---------------------------------------------------------------------------------
async def test_the_same_message_sent_20_times_at_once_is_stored_once(world: World) -> None:
    conversation = await fresh_conversation(world)
    responses = await asyncio.gather(
        *(world.send("alice", conversation, "Where is my order?", "m-once") for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    stored = await stored_messages(world, conversation)
    assert [(m["id"], m["message_id"]) for m in stored] == [(responses[0].json()["id"], "m-once")]


async def test_the_same_conversation_opened_20_times_at_once_is_created_once(world: World) -> None:
    client_id = unique("conv")
    responses = await asyncio.gather(
        *(world.call("alice", "POST", "/api/v1/conversations", {"id": client_id}) for _ in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201], [r.text for r in responses]
    (conversation_id,) = {r.json()["id"] for r in responses}
    entries = await world.call("alice", "GET", f"/api/v1/conversations/{conversation_id}/entries")
    assert [e["type"] for e in entries.json()["entries"]].count("conversation.created") == 1


async def test_a_client_id_is_the_customers_own_so_reusing_anothers_reveals_nothing(world: World) -> None:
    """Client ids are retry keys scoped per customer (issue 13): bob choosing alice's key gets his own
    conversation, not a 409 that would tell him hers exists."""
    client_id = unique("conv")
    alices = await world.call("alice", "POST", "/api/v1/conversations", {"id": client_id})
    bobs = await world.call("bob", "POST", "/api/v1/conversations", {"id": client_id})
    assert (alices.status_code, bobs.status_code) == (201, 201), bobs.text
    assert alices.json()["id"] != bobs.json()["id"]
    assert client_id not in (alices.json()["id"], bobs.json()["id"])  # the server names conversations
    again = await world.call("bob", "POST", "/api/v1/conversations", {"id": client_id})
    assert (again.status_code, again.json()["id"]) == (200, bobs.json()["id"])
    peek = await world.call("bob", "GET", f"/api/v1/conversations/{alices.json()['id']}")
    assert peek.status_code == 404


async def test_a_retry_with_another_text_returns_the_message_first_stored(world: World) -> None:
    conversation = await fresh_conversation(world)
    first = await world.send("alice", conversation, "first words", "m-retry")
    retry = await world.send("alice", conversation, "second thoughts", "m-retry")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert [m["text"] for m in await stored_messages(world, conversation)] == ["first words"]


async def test_a_message_id_already_used_by_someone_else_is_a_conflict(world: World) -> None:
    conversation = await fresh_conversation(world, assigned_to="rep")
    first = await world.send("alice", conversation, "from alice", "m-shared")
    clash = await world.send("rep", conversation, "from rep", "m-shared")
    assert first.status_code == 201, first.text
    assert_problem(clash, 409, "conflict")
    assert [m["text"] for m in await stored_messages(world, conversation)] == ["from alice"]


async def test_every_acknowledged_message_is_in_the_entries(world: World) -> None:
    conversation = await fresh_conversation(world, assigned_to="rep")
    sends = [("alice" if i % 2 else "rep", f"message {i}", f"m-{i}") for i in range(30)]
    responses = await asyncio.gather(*(world.send(who, conversation, text, mid) for who, text, mid in sends))
    acknowledged = {r.json()["id"]: (r.json()["message_id"], r.json()["text"]) for r in responses if r.is_success}
    assert len(acknowledged) == len(sends)
    stored = {m["id"]: (m["message_id"], m["text"]) for m in await stored_messages(world, conversation)}
    assert stored == acknowledged


@pytest.mark.parametrize(
    "body",
    [
        {"id": "nul-1", "text": "before\x00after"},
        {"id": "nul-2", "text": "fine", "extra\x00": 1},
    ],
)
async def test_nul_characters_are_refused_at_the_edge(world: World, body: dict[str, object]) -> None:
    """PostgreSQL cannot store NUL in text; refusing it up front keeps both backends alike."""
    response = await world.call("alice", "POST", f"/api/v1/conversations/{world.conversations['alice']}/messages", body)
    assert_problem(response, 422, "validation_error")


async def test_a_content_length_that_is_not_a_number_is_400(world: World) -> None:
    conversation = world.conversations["alice"]
    response = await world.client.post(
        f"/api/v1/conversations/{conversation}/messages",
        content=b'{"id":"m","text":"x"}',
        headers={**world.auth("alice"), "content-type": "application/json", "content-length": "12abc"},
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
