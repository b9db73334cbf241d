"""Pre-chat forms (issue 12): the deployment's fields, answers checked by the server, routing, known answers.

In process (the app on a real SQLite file, through its HTTP interface); the browser's side of the form is
in tests/test_widget.py.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.test_customers import COMPANY_KEY, identity
from tests.world import World

FIELDS: list[dict[str, Any]] = [
    {
        "name": "topic",
        "label": "What can we help with?",
        "type": "select",
        "required": True,
        "options": [
            {"value": "order", "label": "An order"},
            {"value": "billing", "label": "Billing", "queue": "billing"},
        ],
    },
    {"name": "email", "label": "Your email", "type": "email"},
    {"name": "order_number", "label": "Order number"},
]


async def form_deployment(world: World, key: str = "shop", **extra: Any) -> str:
    """A deployment with FIELDS (and the queue `billing` they route to); returns that queue's id."""
    created = await world.call("admin", "POST", "/api/v1/admin/queues", {"name": "billing"})
    if created.status_code == 409:
        listed = (await world.call("admin", "GET", "/api/v1/admin/queues")).json()
        billing = next(
            q["id"] for q in (listed if isinstance(listed, list) else listed["queues"]) if q["name"] == "billing"
        )
    else:
        assert created.status_code == 201, created.text
        billing = created.json()["id"]
    body = {"key": key, "queue": "support", "allowed_origins": [], "pre_chat_fields": FIELDS, **extra}
    response = await world.call("admin", "POST", "/api/v1/admin/deployments", body)
    assert response.status_code == 201, response.text
    return str(billing)


async def session(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/deployments/{key}/sessions", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def open_with(client: httpx.AsyncClient, token: str, pre_chat: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/conversations", json={"pre_chat": pre_chat}, headers={"Authorization": f"Bearer {token}"}
    )


async def test_the_session_names_the_form_and_good_answers_are_stored_and_route(
    world: World, client: httpx.AsyncClient
) -> None:
    billing = await form_deployment(world)
    guest = await session(client, "shop")
    assert [f["name"] for f in guest["pre_chat_fields"]] == ["topic", "email", "order_number"]
    assert guest["pre_chat_fields"][0]["options"][1] == {"value": "billing", "label": "Billing", "queue": "billing"}

    answers = {"topic": "billing", "email": "ada@example.com", "order_number": "  1042 "}
    opened = await open_with(client, guest["access_token"], answers)
    assert opened.status_code == 201, opened.text
    conversation = opened.json()
    assert conversation["pre_chat"] == {"topic": "billing", "email": "ada@example.com", "order_number": "1042"}
    assert conversation["queue_id"] == billing  # the chosen option routes
    # What the rep's customer card reads: the conversation, with the answers.
    seen = await world.call("supervisor", "GET", f"/api/v1/conversations/{conversation['id']}")
    assert seen.json()["pre_chat"]["topic"] == "billing"

    other = await session(client, "shop")
    plain = await open_with(client, other["access_token"], {"topic": "order"})
    assert plain.status_code == 201 and plain.json()["queue_id"] == world.queue_id  # the deployment's queue


async def test_bad_answers_are_422_naming_each_field(world: World, client: httpx.AsyncClient) -> None:
    await form_deployment(world)
    token = (await session(client, "shop"))["access_token"]
    cases = [
        ({}, [("topic", "missing")]),
        ({"topic": "   "}, [("topic", "missing")]),
        ({"topic": "refunds"}, [("topic", "literal_error")]),
        ({"topic": "order", "email": "not an address"}, [("email", "value_error")]),
        ({"topic": "order", "colour": "blue"}, [("colour", "extra_forbidden")]),
        (
            {"email": "x@", "colour": "blue"},
            [("colour", "extra_forbidden"), ("topic", "missing"), ("email", "value_error")],
        ),
    ]
    for answers, expected in cases:
        response = await open_with(client, token, answers)
        assert response.status_code == 422, (answers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert [(e["loc"][2], e["type"]) for e in problem["errors"]] == expected, answers
        assert all(e["loc"][:2] == ["body", "pre_chat"] for e in problem["errors"])
        assert "pre_chat." in problem["detail"]
    not_text = await open_with(client, token, {"topic": 5})
    assert not_text.status_code == 422  # the schema refuses it before the form is consulted
    listed = await client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
    assert listed.json()["conversations"] == []  # nothing was stored


async def test_a_verified_customer_is_not_asked_what_the_identity_tells(
    app: FastAPI, world: World, client: httpx.AsyncClient
) -> None:
    await form_deployment(world, "members", identity_key=COMPANY_KEY)
    token = identity("cust-7", name="Grace", email="grace@example.com")
    member = await session(client, "members", identity_token=token)
    assert [f["name"] for f in member["pre_chat_fields"]] == ["topic", "order_number"]  # the email is known
    opened = await open_with(client, member["access_token"], {"topic": "order"})
    assert opened.status_code == 201, opened.text
    assert opened.json()["pre_chat"] == {"topic": "order", "email": "grace@example.com"}


async def test_a_form_may_only_route_to_queues_that_exist(world: World) -> None:
    fields = [{"name": "t", "label": "T", "type": "select", "options": [{"value": "a", "label": "A", "queue": "nope"}]}]
    body = {"key": "broken", "queue": "support", "allowed_origins": [], "pre_chat_fields": fields}
    refused = await world.call("admin", "POST", "/api/v1/admin/deployments", body)
    assert refused.status_code == 422, refused.text
    for bad in (
        [{"name": "t", "label": "T", "type": "select"}],
        [{"name": "t", "label": "T", "options": [{"value": "a", "label": "A"}]}],
        [{"name": "t", "label": "T", "type": "select", "options": [{"value": "a", "label": "A"}] * 2}],
        [{"name": "t", "label": "T", "type": "date"}],
    ):
        response = await world.call("admin", "POST", "/api/v1/admin/deployments", {**body, "pre_chat_fields": bad})
        assert response.status_code == 422, (bad, response.text)
