"""Who may call what: every operation in our OpenAPI document against every kind of caller.

The matrix is the permissions table of docs/protocol.md, made executable. Each row is one operation on one
target, with the exact status every caller gets; a new operation without a row fails
``test_every_operation_has_a_row``. The rules it pins down:

- a customer never learns that another customer's conversation exists (404, never 403);
- staff without ``chat_user`` get 403 naming ``chat_user``; a rep without ``access_conversation_entries``
  cannot read entries, reply or transfer, and the 403 names that permission; admin resources need ``admin``;
- access tokens are accepted in the ``Authorization`` header only, never in a query string;
- expired, tampered and foreign tokens, and the tokens of disabled users, are 401;
- every refusal is an ``application/problem+json`` body with ``type, title, status, detail, code``.

One app and one world serve the whole module (building a world hashes a dozen passwords); every test
gets a fresh *scene*, conversations of its own, so no test sees what another one changed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from helpline import create_app
from helpline.domain.security import TICKET_AUDIENCE, Tokens
from tests.conftest import SECRET, make_settings, unlimited_app
from tests.world import PASSWORD, World, build_world

# The async tests share the module's event loop, where its app and world live.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

CALLERS = ("anonymous", "alice", "bob", "rep", "rep2", "trainee", "supervisor", "admin", "nochat")
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}
CODES = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found"}


# -- the module's app, world and a fresh scene per test ------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    # Rate limits are not what this module tests: a few hundred calls by one identity must not trip them.
    async with unlimited_app(tmp_path_factory.mktemp("authorization")) as application:
        yield application


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    built = await build_world(app, client)
    await built.customer("carol")  # the customer whose conversations the trainee handles
    return built


@dataclass
class Scene:
    """Conversations made for one test: alice's (assigned to rep), bob's (queued), carol's (assigned to
    trainee), each with one message from its customer; and a conversation id nobody has used."""

    world: World
    conversations: dict[str, str] = field(default_factory=dict)
    first_entry: dict[str, int] = field(default_factory=dict)
    unique: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def conversation(self, whose: str) -> str:
        return self.conversations[whose]


@pytest_asyncio.fixture(loop_scope="module")
async def scene(app: FastAPI, world: World) -> Scene:
    made = Scene(world)
    for customer, whose in (("alice", "alice"), ("bob", "bob"), ("carol", "trainee")):
        conversation = await world.open_conversation(customer, id=f"conv-{whose}-{made.unique}")
        sent = await world.send(customer, conversation, "hello", f"first-{made.unique}")
        assert sent.status_code == 201, sent.text
        made.conversations[whose] = conversation
        made.first_entry[whose] = sent.json()["id"]
    await world.assign(made.conversations["alice"], "rep")
    # Work goes only to reps who can answer it (issue 11): the trainee holds carol's conversation from
    # before an admin withdrew its access_conversation_entries.
    trainee = world.user_ids["trainee"]
    accounts = app.state.services.accounts
    await accounts.update_user(trainee, {"permissions": ["chat_user", "chat_rep", "access_conversation_entries"]})
    await world.assign(made.conversations["trainee"], "trainee")
    await accounts.update_user(trainee, {"permissions": ["chat_user", "chat_rep"]})
    made.conversations["missing"] = f"conv-missing-{made.unique}"
    return made


# -- the matrix ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Needs:
    """403 ``permission_denied`` whose body names the missing permission."""

    permission: str


CHAT_USER = Needs("chat_user")
CHAT_REP = Needs("chat_rep")
ACE = Needs("access_conversation_entries")
SUPERVISOR = Needs("supervisor")
ADMIN = Needs("admin")
Outcome = int | Needs


def answers(
    *,
    anonymous: Outcome,
    alice: Outcome,
    bob: Outcome,
    rep: Outcome,
    rep2: Outcome,
    trainee: Outcome,
    supervisor: Outcome,
    admin: Outcome,
    nochat: Outcome,
) -> dict[str, Outcome]:
    """One row's expected answers; keyword-only without defaults, so no caller can be left out."""
    return {
        "anonymous": anonymous,
        "alice": alice,
        "bob": bob,
        "rep": rep,
        "rep2": rep2,
        "trainee": trainee,
        "supervisor": supervisor,
        "admin": admin,
        "nochat": nochat,
    }


def everyone(status: int) -> dict[str, Outcome]:
    return answers(
        anonymous=status,
        alice=status,
        bob=status,
        rep=status,
        rep2=status,
        trainee=status,
        supervisor=status,
        admin=status,
        nochat=status,
    )


def admins_only(status: int) -> dict[str, Outcome]:
    refused = everyone(403) | {"anonymous": 401}
    staff = {who: ADMIN for who in ("rep", "rep2", "trainee", "supervisor", "nochat")}
    return refused | staff | {"admin": status}


@dataclass(frozen=True)
class Files:
    """A multipart body (``files=`` of httpx) instead of JSON, for uploads."""

    files: dict[str, tuple[str, bytes, str]]


Body = Callable[[Scene], Any]


@dataclass(frozen=True)
class Row:
    operation: str  # "METHOD /path/{template}", exactly as in the OpenAPI document
    expect: dict[str, Outcome]
    on: str = "alice"  # whose conversation fills {conversation_id}
    body: Body | None = None
    query: str = ""

    @property
    def method(self) -> str:
        return self.operation.split(" ", 1)[0]

    def path(self, scene: Scene) -> str:
        template = self.operation.split(" ", 1)[1]
        return template.format(
            conversation_id=scene.conversations.get(self.on, ""),
            deployment_key=scene.world.deployment_key,
            user_id=scene.world.user_ids["rep2"],
            offer_id="offer-1",
            deployment_id=scene.world.deployment_id,
            webhook_id="whk-missing",
            delivery_id=1,
            key_id="key-missing",
            queue_id=scene.world.queue_id,
            attachment_id="att-missing",
            customer_id="cus-missing",
            canned_id="canned-missing",
        )

    @property
    def id(self) -> str:
        if "{conversation_id}" not in self.operation:
            return self.operation
        target = "a missing one" if self.on == "missing" else f"{self.on}'s"
        return f"{self.operation} ({target})"


# One row per operation and target, with every caller's answer (`answers` refuses to leave one out).
# fmt: off
ROWS = [
    # credentials
    Row("POST /api/v1/auth/login", everyone(200), body=lambda s: {"username": "rep2", "password": PASSWORD}),
    Row("POST /api/v1/deployments/{deployment_key}/sessions", everyone(201), body=lambda s: {}),
    # A resume link's token is the credential; the caller's own is not (tests/test_resume_links.py).
    Row("POST /api/v1/sessions/resume", everyone(401), body=lambda s: {"token": "not-a-token"}),
    Row("POST /api/v1/stream-tickets",
        answers(anonymous=401, alice=200, bob=200, rep=200, rep2=200, trainee=200, supervisor=200, admin=200,
                nochat=CHAT_USER)),
    # conversations
    Row("POST /api/v1/conversations",
        answers(anonymous=401, alice=201, bob=201, rep=403, rep2=403, trainee=403, supervisor=403, admin=403,
                nochat=403),
        body=lambda s: {}),
    Row("GET /api/v1/conversations",
        answers(anonymous=401, alice=200, bob=200, rep=200, rep2=200, trainee=200, supervisor=200, admin=200,
                nochat=CHAT_USER)),
    Row("GET /api/v1/conversations/{conversation_id}",
        answers(anonymous=401, alice=200, bob=404, rep=200, rep2=404, trainee=404, supervisor=200, admin=404,
                nochat=CHAT_USER)),
    Row("GET /api/v1/conversations/{conversation_id}", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=200, supervisor=200, admin=404,
                       nochat=CHAT_USER)),
    Row("GET /api/v1/conversations/{conversation_id}", on="missing",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=404, supervisor=404, admin=404,
                       nochat=CHAT_USER)),
    Row("GET /api/v1/conversations/{conversation_id}/entries",
        answers(anonymous=401, alice=200, bob=404, rep=200, rep2=404, trainee=404, supervisor=200, admin=404,
                nochat=CHAT_USER)),
    Row("GET /api/v1/conversations/{conversation_id}/entries", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=ACE, supervisor=200, admin=404,
                       nochat=CHAT_USER)),
    Row("POST /api/v1/conversations/{conversation_id}/messages",
        answers(anonymous=401, alice=201, bob=404, rep=201, rep2=404, trainee=404, supervisor=403, admin=404,
                nochat=CHAT_USER),
        body=lambda s: {"id": f"m-{s.unique}", "text": "hello"}),
    Row("POST /api/v1/conversations/{conversation_id}/messages", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=ACE, supervisor=403, admin=404,
                       nochat=CHAT_USER),
        body=lambda s: {"id": f"m-{s.unique}", "text": "hello"}),
    Row("POST /api/v1/conversations/{conversation_id}/typing",
        answers(anonymous=401, alice=204, bob=404, rep=204, rep2=404, trainee=404, supervisor=403, admin=404,
                nochat=CHAT_USER),
        body=lambda s: {"state": "started"}),
    Row("POST /api/v1/conversations/{conversation_id}/typing", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=204, supervisor=403, admin=404,
                       nochat=CHAT_USER),
        body=lambda s: {"state": "started"}),
    Row("POST /api/v1/conversations/{conversation_id}/receipts",
        answers(anonymous=401, alice=204, bob=404, rep=204, rep2=404, trainee=404, supervisor=403, admin=404,
                nochat=CHAT_USER),
        body=lambda s: {"type": "read", "entry_id": s.first_entry["alice"]}),
    Row("POST /api/v1/conversations/{conversation_id}/transfer",
        answers(anonymous=401, alice=403, bob=404, rep=202, rep2=404, trainee=404, supervisor=202, admin=404,
                nochat=CHAT_USER),
        body=lambda s: {"to_queue_id": s.world.queue_id}),
    Row("POST /api/v1/conversations/{conversation_id}/transfer", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=ACE, supervisor=202, admin=404,
                       nochat=CHAT_USER),
        body=lambda s: {"to_queue_id": s.world.queue_id}),
    Row("POST /api/v1/conversations/{conversation_id}/assign",
        answers(anonymous=401, alice=403, bob=403, rep=SUPERVISOR, rep2=SUPERVISOR, trainee=SUPERVISOR,
                supervisor=200, admin=200, nochat=SUPERVISOR),
        body=lambda s: {"user_id": s.world.user_ids["rep2"]}),
    Row("POST /api/v1/conversations/{conversation_id}/close",
        answers(anonymous=401, alice=200, bob=404, rep=200, rep2=404, trainee=404, supervisor=200, admin=404,
                nochat=CHAT_USER)),
    Row("POST /api/v1/conversations/{conversation_id}/close", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=200, supervisor=200, admin=404,
                       nochat=CHAT_USER)),
    # routing
    Row("PUT /api/v1/me/presence",
        answers(anonymous=401, alice=403, bob=403, rep=200, rep2=200, trainee=200, supervisor=CHAT_REP,
                admin=CHAT_REP, nochat=CHAT_USER),
        body=lambda s: {"status": "online"}),
    Row("POST /api/v1/offers/{offer_id}/accept",
        answers(anonymous=401, alice=403, bob=403, rep=404, rep2=404, trainee=404, supervisor=CHAT_REP,
                admin=CHAT_REP, nochat=CHAT_USER)),
    Row("POST /api/v1/offers/{offer_id}/decline",
        answers(anonymous=401, alice=403, bob=403, rep=404, rep2=404, trainee=404, supervisor=CHAT_REP,
                admin=CHAT_REP, nochat=CHAT_USER)),
    Row("GET /api/v1/reps/available",
        answers(anonymous=401, alice=403, bob=403, rep=200, rep2=200, trainee=ACE, supervisor=200, admin=ACE,
                nochat=CHAT_USER)),
    Row("GET /api/v1/queues/stats",
        answers(anonymous=401, alice=403, bob=403, rep=SUPERVISOR, rep2=SUPERVISOR, trainee=SUPERVISOR,
                supervisor=200, admin=SUPERVISOR, nochat=SUPERVISOR)),
    Row("GET /api/v1/me/presence",
        answers(anonymous=401, alice=403, bob=403, rep=200, rep2=200, trainee=200, supervisor=CHAT_REP,
                admin=CHAT_REP, nochat=CHAT_USER)),
    Row("GET /api/v1/offers",
        answers(anonymous=401, alice=403, bob=403, rep=200, rep2=200, trainee=200, supervisor=CHAT_REP,
                admin=CHAT_REP, nochat=CHAT_USER)),
    Row("GET /api/v1/queues",
        answers(anonymous=401, alice=403, bob=403, rep=200, rep2=200, trainee=200, supervisor=200, admin=200,
                nochat=CHAT_USER)),
    # the console: internal notes and canned responses
    Row("POST /api/v1/conversations/{conversation_id}/notes",
        answers(anonymous=401, alice=403, bob=403, rep=201, rep2=404, trainee=ACE, supervisor=201, admin=ACE,
                nochat=CHAT_USER),
        body=lambda s: {"id": f"n-{s.unique}", "text": "VIP, be kind"}),
    Row("GET /api/v1/canned-responses",
        answers(anonymous=401, alice=403, bob=403, rep=200, rep2=200, trainee=200, supervisor=200, admin=200,
                nochat=CHAT_USER)),
    Row("POST /api/v1/canned-responses",
        answers(anonymous=401, alice=403, bob=403, rep=201, rep2=201, trainee=201, supervisor=201, admin=201,
                nochat=CHAT_USER),
        body=lambda s: {"shortcut": f"s{s.unique}", "title": "Hello", "text": "Hi {customer.name}", "personal": True}),
    Row("PATCH /api/v1/canned-responses/{canned_id}",
        answers(anonymous=401, alice=403, bob=403, rep=404, rep2=404, trainee=404, supervisor=404, admin=404,
                nochat=CHAT_USER),
        body=lambda s: {"title": "Renamed"}),
    Row("DELETE /api/v1/canned-responses/{canned_id}",
        answers(anonymous=401, alice=403, bob=403, rep=404, rep2=404, trainee=404, supervisor=404, admin=404,
                nochat=CHAT_USER)),
    # admin
    Row("GET /api/v1/admin/users", admins_only(200)),
    Row("POST /api/v1/admin/users", admins_only(201),
        body=lambda s: {"username": f"new-{s.unique}", "password": PASSWORD, "permissions": ["chat_user"]}),
    Row("GET /api/v1/admin/users/{user_id}", admins_only(200)),
    Row("PATCH /api/v1/admin/users/{user_id}", admins_only(200), body=lambda s: {"display_name": "Second Rep"}),
    Row("GET /api/v1/admin/queues", admins_only(200)),
    Row("POST /api/v1/admin/queues", admins_only(201), body=lambda s: {"name": f"queue-{s.unique}"}),
    Row("PATCH /api/v1/admin/queues/{queue_id}", admins_only(200), body=lambda s: {"dispositions": ["Resolved"]}),
    Row("GET /api/v1/admin/deployments", admins_only(200)),
    Row("POST /api/v1/admin/deployments", admins_only(201),
        body=lambda s: {"key": f"site-{s.unique}", "queue": "support", "allowed_origins": ["https://a.example"]}),
    Row("PATCH /api/v1/admin/deployments/{deployment_id}", admins_only(200), body=lambda s: {"greeting": "Hi"}),
    # integrations (issue 14)
    Row("GET /api/v1/admin/webhooks", admins_only(200)),
    Row("POST /api/v1/admin/webhooks", admins_only(201),
        body=lambda s: {"url": "https://crm.example/hook", "events": ["conversation.closed"]}),
    Row("GET /api/v1/admin/webhooks/{webhook_id}", admins_only(404)),
    Row("PATCH /api/v1/admin/webhooks/{webhook_id}", admins_only(404), body=lambda s: {"enabled": True}),
    Row("DELETE /api/v1/admin/webhooks/{webhook_id}", admins_only(404)),
    Row("POST /api/v1/admin/webhooks/{webhook_id}/rotate-secret", admins_only(404)),
    Row("GET /api/v1/admin/webhooks/{webhook_id}/deliveries", admins_only(404)),
    Row("POST /api/v1/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", admins_only(404)),
    Row("POST /api/v1/admin/webhooks/{webhook_id}/test", admins_only(404)),
    Row("GET /api/v1/admin/api-keys", admins_only(200)),
    Row("POST /api/v1/admin/api-keys", admins_only(201),
        body=lambda s: {"name": f"key-{s.unique}", "permissions": ["chat_user"]}),
    Row("DELETE /api/v1/admin/api-keys/{key_id}", admins_only(404)),
    Row("PUT /api/v1/admin/queues/{queue_id}/bot", admins_only(200), body=lambda s: {"user_id": None}),
    Row("POST /api/v1/conversations/{conversation_id}/escalate",
        answers(anonymous=401, alice=409, bob=404, rep=202, rep2=404, trainee=404, supervisor=403, admin=404,
                nochat=CHAT_USER),
        body=lambda s: {"summary": "over to a person"}),
    # customers' extras: attachments, ratings, email, erasure
    Row("POST /api/v1/conversations/{conversation_id}/attachments",
        answers(anonymous=401, alice=201, bob=404, rep=201, rep2=404, trainee=404, supervisor=403, admin=404,
                nochat=CHAT_USER),
        body=lambda s: Files({"file": ("note.txt", b"hello there", "text/plain")})),
    Row("POST /api/v1/conversations/{conversation_id}/attachments", on="trainee",
        expect=answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=ACE, supervisor=403, admin=404,
                       nochat=CHAT_USER),
        body=lambda s: Files({"file": ("note.txt", b"hello there", "text/plain")})),
    Row("GET /api/v1/attachments/{attachment_id}",
        answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=404, supervisor=404, admin=404,
                nochat=CHAT_USER)),
    Row("GET /api/v1/attachments/{attachment_id}/thumbnail",  # exactly the download's (tests/test_attachments.py)
        answers(anonymous=401, alice=404, bob=404, rep=404, rep2=404, trainee=404, supervisor=404, admin=404,
                nochat=CHAT_USER)),
    Row("POST /api/v1/conversations/{conversation_id}/rating",  # 409: alice's chat has not ended
        answers(anonymous=401, alice=409, bob=404, rep=403, rep2=403, trainee=403, supervisor=403, admin=403,
                nochat=403),
        body=lambda s: {"score": 5}),
    Row("POST /api/v1/conversations/{conversation_id}/transcript",  # 409: this server sends no email
        answers(anonymous=401, alice=409, bob=409, rep=403, rep2=403, trainee=403, supervisor=403, admin=403,
                nochat=403),
        body=lambda s: {"email": "alice@example.com"}),
    Row("PUT /api/v1/me/contact",  # 409: this server sends no email
        answers(anonymous=401, alice=409, bob=409, rep=403, rep2=403, trainee=403, supervisor=403, admin=403,
                nochat=403),
        body=lambda s: {"email": "alice@example.com"}),
    Row("DELETE /api/v1/admin/customers/{customer_id}", admins_only(404)),
    # operations
    Row("GET /healthz", everyone(200)),
    Row("GET /readyz", everyone(200)),
    Row("GET /metrics", everyone(200)),
    Row("GET /api/v1/diagnostics/stream", everyone(200), query="count=1&interval=0.1"),  # for `helpline doctor`
    Row("GET /api/v1/diagnostics/poll", everyone(200), query="hold=0"),  # the /diagnostics page's probes
    Row("GET /api/v1/diagnostics/verdicts", everyone(200)),
    Row("POST /api/v1/diagnostics/verdict", everyone(200), body=lambda s: {"reachable": False}),
    # events
    Row("GET /api/v1/events/poll", query="timeout=0",
        expect=answers(anonymous=401, alice=200, bob=200, rep=200, rep2=200, trainee=200, supervisor=200, admin=200,
                       nochat=CHAT_USER)),
    Row("GET /api/v1/events",
        answers(anonymous=401, alice=200, bob=200, rep=200, rep2=200, trainee=200, supervisor=200, admin=200,
                nochat=CHAT_USER)),
]
# fmt: on


# -- calling -------------------------------------------------------------------------------------
async def open_stream(app: FastAPI, headers: dict[str, str], query: str = "") -> httpx.Response:
    """Start ``GET /api/v1/events`` on the app itself and hang up once its status is known.

    An in-process HTTP client waits for the whole body, and a stream's body never ends; here the
    client "disconnects" as soon as the response starts, which ends the stream. A refusal's body is
    complete by then and is returned whole.
    """
    started = asyncio.Event()
    start: dict[str, Any] = {}
    body = bytearray()

    async def receive() -> dict[str, Any]:
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            started.set()
        elif message["type"] == "http.response.body" and start["status"] != 200:
            body.extend(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/events",
        "raw_path": b"/api/v1/events",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    async with asyncio.timeout(10):  # watchdog: a stream that ignores the disconnect fails, never hangs
        await app(scope, receive, send)  # type: ignore[arg-type]
    headers_out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return httpx.Response(start["status"], headers=headers_out, content=bytes(body))


async def perform(app: FastAPI, world: World, row: Row, caller: str, scene: Scene) -> httpx.Response:
    path = row.path(scene)
    if row.operation == "GET /api/v1/events":
        return await open_stream(app, world.auth(caller), row.query)
    body = row.body(scene) if row.body else None
    url = f"{path}?{row.query}" if row.query else path
    if isinstance(body, Files):
        return await world.call(caller, row.method, url, files=body.files)
    return await world.call(caller, row.method, url, body)


def assert_problem(response: httpx.Response) -> dict[str, Any]:
    """An RFC 9457 body whose ``status`` and ``code`` agree with the HTTP status."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert PROBLEM_FIELDS <= body.keys(), body
    assert body["status"] == response.status_code, body
    if response.status_code in CODES:
        assert body["code"] == CODES[response.status_code], body
    return body


def assert_outcome(response: httpx.Response, expected: Outcome) -> None:
    status = 403 if isinstance(expected, Needs) else expected
    assert response.status_code == status, response.text
    if status >= 400:
        body = assert_problem(response)
        if isinstance(expected, Needs):
            assert body.get("permission") == expected.permission, body
            assert expected.permission in body["detail"], body


# -- the tests -----------------------------------------------------------------------------------
def test_every_operation_has_a_row() -> None:
    app = create_app(make_settings("sqlite:///:memory:"))  # the document needs no running app
    documented = {f"{method.upper()} {path}" for path, item in app.openapi()["paths"].items() for method in item}
    assert documented == {row.operation for row in ROWS}


@in_module_loop
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_matrix(app: FastAPI, world: World, scene: Scene, row: Row, caller: str) -> None:
    response = await perform(app, world, row, caller, scene)
    assert_outcome(response, row.expect[caller])


CONVERSATION_CALLS = [
    ("GET", "", None),
    ("GET", "/entries", None),
    ("POST", "/messages", {"id": "probe", "text": "is anyone there?"}),
    ("POST", "/typing", {"state": "started"}),
    ("POST", "/receipts", {"type": "read", "entry_id": 1}),
    ("POST", "/transfer", {"to_queue_id": "q"}),
    ("POST", "/close", None),
]


@in_module_loop
@pytest.mark.parametrize(
    ("method", "suffix", "body"), CONVERSATION_CALLS, ids=[f"{m} {s or '/'}" for m, s, _ in CONVERSATION_CALLS]
)
async def test_another_customers_conversation_looks_like_no_conversation(
    world: World, scene: Scene, method: str, suffix: str, body: Any
) -> None:
    foreign = await world.call("bob", method, f"/api/v1/conversations/{scene.conversation('alice')}{suffix}", body)
    missing = await world.call("bob", method, f"/api/v1/conversations/{scene.conversation('missing')}{suffix}", body)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert_problem(foreign)


@in_module_loop
async def test_conversation_list_shows_only_the_callers_own(world: World, scene: Scene) -> None:
    async def listed(who: str) -> set[str]:
        response = await world.call(who, "GET", "/api/v1/conversations?limit=100")
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["conversations"]}

    alices, bobs, traines = (scene.conversation(w) for w in ("alice", "bob", "trainee"))
    assert alices in await listed("alice") and bobs not in await listed("alice")
    assert bobs in await listed("bob") and alices not in await listed("bob")
    assert alices in await listed("rep") and traines not in await listed("rep")
    assert not {alices, bobs, traines} & await listed("rep2")
    assert {alices, bobs, traines} <= await listed("supervisor")


# -- credentials ---------------------------------------------------------------------------------
QUERY_CREDENTIALS = ["GET /api/v1/conversations", "POST /api/v1/stream-tickets", "GET /api/v1/events/poll"]


@in_module_loop
@pytest.mark.parametrize("name", ["access_token", "token"])
@pytest.mark.parametrize("operation", [*QUERY_CREDENTIALS, "GET /api/v1/events"])
async def test_an_access_token_in_the_query_string_is_refused(
    app: FastAPI, client: httpx.AsyncClient, world: World, operation: str, name: str
) -> None:
    method, path = operation.split(" ")
    query = f"{name}={world.tokens['rep']}&timeout=0"
    if path == "/api/v1/events":
        response = await open_stream(app, {}, query)
    else:
        response = await client.request(method, f"{path}?{query}")
    assert response.status_code == 401
    assert_problem(response)


@in_module_loop
@pytest.mark.parametrize("operation", QUERY_CREDENTIALS)
async def test_a_stream_ticket_is_accepted_by_the_event_stream_only(
    client: httpx.AsyncClient, world: World, operation: str
) -> None:
    ticket = (await world.call("rep", "POST", "/api/v1/stream-tickets")).json()["ticket"]
    method, path = operation.split(" ")
    in_query = await client.request(method, f"{path}?ticket={ticket}&timeout=0")
    as_bearer = await client.request(method, f"{path}?timeout=0", headers={"Authorization": f"Bearer {ticket}"})
    assert (in_query.status_code, as_bearer.status_code) == (401, 401)
    assert_problem(in_query)
    assert_problem(as_bearer)


@in_module_loop
async def test_a_stream_ticket_opens_one_stream_once(app: FastAPI, world: World) -> None:
    ticket = (await world.call("rep", "POST", "/api/v1/stream-tickets")).json()["ticket"]
    first = await open_stream(app, {}, f"ticket={ticket}")
    second = await open_stream(app, {}, f"ticket={ticket}")
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert second.status_code == 401
    assert_problem(second)


def bad_tokens(world: World) -> dict[str, str]:
    rep, admin = world.user_ids["rep"], world.user_ids["admin"]
    real = world.tokens["rep"]
    header, payload, signature = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    as_admin = base64.urlsafe_b64encode(json.dumps({**claims, "sub": admin}).encode()).decode().rstrip("=")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    return {
        "expired": Tokens(SECRET).issue(rep, "staff", seconds=-60),
        "other subject, same signature": f"{header}.{as_admin}.{signature}",
        "signature changed": f"{header}.{payload}.{flipped}",
        "signed with another key": Tokens("another-secret-key-that-is-long-enough-012345").issue(rep, "staff", 60),
        "unsigned (alg none)": (
            base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=") + f".{payload}."
        ),
        "stream ticket": Tokens(SECRET).issue(rep, "staff", 60, audience=TICKET_AUDIENCE),
        "no such user": Tokens(SECRET).issue("user-that-does-not-exist", "staff", 60),
        "garbage": "not-a-token",
    }


BAD_TOKEN_NAMES = [
    "expired",
    "other subject, same signature",
    "signature changed",
    "signed with another key",
    "unsigned (alg none)",
    "stream ticket",
    "no such user",
    "garbage",
]


@in_module_loop
@pytest.mark.parametrize("kind", BAD_TOKEN_NAMES)
@pytest.mark.parametrize("operation", [*QUERY_CREDENTIALS, "GET /api/v1/admin/users", "GET /api/v1/events"])
async def test_a_bad_token_is_not_authenticated(
    app: FastAPI, client: httpx.AsyncClient, world: World, operation: str, kind: str
) -> None:
    headers = {"Authorization": f"Bearer {bad_tokens(world)[kind]}"}
    method, path = operation.split(" ")
    if path == "/api/v1/events":
        response = await open_stream(app, headers)
    else:
        response = await client.request(method, f"{path}?timeout=0", headers=headers)
    assert response.status_code == 401, response.text
    assert_problem(response)
    assert response.headers["www-authenticate"] == "Bearer"


HOSTILE_AUTHORIZATION = {
    "empty": "",
    "scheme only": "Bearer",
    "blank token": "Bearer    ",
    "basic credentials": "Basic cmVwOmNvcnJlY3QtaG9yc2UtYmF0dGVyeQ==",
    "a token of 8 KiB": "Bearer " + "a" * 8192,
    "three dots": "Bearer ...",
    "non-ASCII": "Bearer t\u00f6ken",
}


@in_module_loop
@pytest.mark.parametrize("header", HOSTILE_AUTHORIZATION.values(), ids=HOSTILE_AUTHORIZATION.keys())
async def test_a_malformed_authorization_header_is_not_authenticated(
    app: FastAPI, client: httpx.AsyncClient, header: str
) -> None:
    raw = [(b"authorization", header.encode("latin-1"))]
    rest = await client.get("/api/v1/conversations", headers=raw)
    stream = await open_stream(app, {"Authorization": header})
    for response in (rest, stream):
        assert response.status_code == 401, response.text
        assert_problem(response)


@in_module_loop
async def test_a_disabled_users_token_stops_working(app: FastAPI, client: httpx.AsyncClient, world: World) -> None:
    name = f"leaver-{uuid.uuid4().hex[:8]}"
    created = await world.call(
        "admin", "POST", "/api/v1/admin/users", {"username": name, "password": PASSWORD, "permissions": ["chat_user"]}
    )
    assert created.status_code == 201, created.text
    login = await client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    token = login.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/conversations", headers=bearer)).status_code == 200

    disabled = await world.call("admin", "PATCH", f"/api/v1/admin/users/{created.json()['id']}", {"disabled": True})
    assert disabled.status_code == 200, disabled.text

    for response in (
        await client.get("/api/v1/conversations", headers=bearer),
        await client.post("/api/v1/stream-tickets", headers=bearer),
        await client.get("/api/v1/events/poll?timeout=0", headers=bearer),
        await open_stream(app, bearer),
        await client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}),
    ):
        assert response.status_code == 401, response.text
        assert_problem(response)


@in_module_loop
async def test_a_revoked_permission_takes_effect_at_once(world: World, scene: Scene) -> None:
    conversation = scene.conversation("alice")
    assert (await world.call("rep", "GET", f"/api/v1/conversations/{conversation}/entries")).status_code == 200
    revoke = {"permissions": ["chat_user", "chat_rep"]}
    assert (
        await world.call("admin", "PATCH", f"/api/v1/admin/users/{world.user_ids['rep']}", revoke)
    ).status_code == 200
    try:
        response = await world.call("rep", "GET", f"/api/v1/conversations/{conversation}/entries")
        assert_outcome(response, ACE)
    finally:
        restore = {"permissions": ["chat_user", "chat_rep", "access_conversation_entries"]}
        await world.call("admin", "PATCH", f"/api/v1/admin/users/{world.user_ids['rep']}", restore)
