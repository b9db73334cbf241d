"""Schemathesis over our own OpenAPI document: whatever a client sends, the answer is what the document says.

Every operation but the endless ``GET /api/v1/events`` is fuzzed with valid and invalid input, as an
admin, a rep and a customer. The checks: never a 5xx; every status code, content type, header and
response body is one the document declares for that operation; and input the document forbids is
refused. Examples are bounded and derandomized, so a run is reproducible and the module stays well
under two minutes.

How it runs, and why:
- against a real uvicorn on a socket (``LiveServer``), not ``from_asgi``: schemathesis' pytest plugin
  ends an in-process app's lifespan after every test and starts it again on the next request, and a
  Helpline app's lifespan runs once (its shutdown ends the stream registry for good, so every poll
  afterwards is a 503);
- each operation and caller is a pytest case of its own, driving ``operation.as_strategy()`` with
  Hypothesis: schemathesis' lazy ``from_fixture`` loader does not run under pytest 9.2 (it rewrites a
  node id attribute pytest no longer has), and the app must be built and seeded by a fixture, not at import;
- the two streams are left out: ``/api/v1/events`` never ends, and ``/api/v1/diagnostics/stream`` is
  timed (up to 10 probes 0.1-5 s apart, then up to 45 s of silence), so a few examples would take minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpline import create_app
from helpline.bus import open_bus
from helpline.domain.accounts import Accounts
from helpline.domain.conversations import Conversations
from helpline.store import open_store
from tests.conftest import LiveServer, make_settings
from tests.world import PASSWORD, STAFF

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CALLERS = {"admin": "admin", "rep": "rep", "customer": "alice"}
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Any]
# Invalid input may be refused with any of these; 413 joins schemathesis' defaults because a body over
# 64 KiB is refused before it is validated (negative examples with very long strings get there).
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
CONFIG = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
STREAMS = {"GET /api/v1/events", "GET /api/v1/diagnostics/stream"}


def documented_operations(app: FastAPI) -> list[str]:
    return [f"{method.upper()} {path}" for path, item in app.openapi()["paths"].items() for method in item]


# Building an app has no side effects (its lifespan opens the store); this one only lists the operations.
OPERATIONS = [op for op in documented_operations(create_app(make_settings("sqlite:///:memory:"))) if op not in STREAMS]


# -- a seeded server -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    tokens: dict[str, str]
    known: dict[str, str]  # path parameters that name things that exist


async def seed(database_url: str) -> Seeded:
    """Staff, a queue, a deployment, and alice's conversation (assigned to rep, with one message),
    written straight to the store before the server starts."""
    store = await open_store(database_url)
    try:
        accounts = Accounts(store, make_settings(database_url))
        conversations = Conversations(store, open_bus("memory://"))
        users = {
            name: (await accounts.create_user(name, PASSWORD, permissions)).id for name, permissions in STAFF.items()
        }
        await accounts.create_queue("support")
        await accounts.create_deployment("web", "support", ["https://shop.example"])
        tokens = {
            name: (await accounts.login(name, PASSWORD))["access_token"] for name in ("admin", "rep", "supervisor")
        }
        session = await accounts.start_customer_session(
            "web", origin=None, display_name="Alice", email=None, identity_token=None
        )
        tokens["alice"] = session["access_token"]
        alice, rep, supervisor = [await accounts.principal(tokens[who]) for who in ("alice", "rep", "supervisor")]
        conversation, _ = await conversations.create(alice, "conv-alice-1", {})
        await conversations.assign(supervisor, conversation.id, rep.id)
        await conversations.post_message(alice, conversation.id, "m1", "Hello")
    finally:
        await store.close()
    # rep2 is nobody's caller here, so a fuzzed PATCH that disables it locks no test out.
    known = {"conversation_id": conversation.id, "user_id": users["rep2"], "deployment_key": "web"}
    return Seeded(tokens, known)


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Seeded]]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'helpline.db'}"
    seeded = asyncio.run(seed(database_url))
    # Rate limits would turn most of the run into 429s; they are tested on their own.
    settings_ = make_settings(database_url, rate_limit_per_minute=10**9, login_attempts_per_minute=10**9)
    server = LiveServer(settings_).start()
    try:
        yield server, seeded
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(seeded_server: tuple[LiveServer, Seeded]) -> schemathesis.BaseSchema:
    server, _ = seeded_server
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=CONFIG)


# -- the fuzzing ---------------------------------------------------------------------------------
def cases(operation: Operation, known: dict[str, str]) -> st.SearchStrategy[Case]:
    """Valid and invalid requests; half of them aimed at things that exist, so they get past the 404s."""
    pinned = {name: value for name, value in known.items() if f"{{{name}}}" in operation.path}
    # A long poll waits up to `timeout` seconds (25 by default) for an event that never comes.
    query = {"timeout": 0} if operation.path == "/api/v1/events/poll" else None
    strategies = [operation.as_strategy(generation_mode=mode, query=query) for mode in GenerationMode]
    if pinned:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=pinned, query=query) for mode in GenerationMode
        ]
    return st.one_of(strategies)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("label", OPERATIONS)
def test_the_api_keeps_to_its_document(
    api_schema: schemathesis.BaseSchema, seeded_server: tuple[LiveServer, Seeded], label: str, caller: str
) -> None:
    server, seeded = seeded_server
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {seeded.tokens[CALLERS[caller]]}"}

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,  # the same examples every run
        database=None,  # and no example database written into the repository
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(operation, seeded.known))
    def fuzz(case: Case) -> None:
        case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS, timeout=30)

    fuzz()


def test_every_operation_but_the_streams_is_fuzzed(seeded_server: tuple[LiveServer, Seeded]) -> None:
    """A guard on the guard: the list above is the live document's, minus the streams."""
    server, _ = seeded_server
    documented = set(documented_operations(server.app))
    assert set(OPERATIONS) == documented - STREAMS
    assert documented >= STREAMS
