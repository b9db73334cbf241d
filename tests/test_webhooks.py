"""Webhooks against a real receiver (an HTTP server in the test process): signed, durable, in order.

Issue 14's "done when": every subscribed event type arrives signed and verifiable (by the checks printed
in docs/integrations.md, run as printed); 500 three times then 200 gets the event exactly once more with
the same id; per-conversation order under concurrent writers; a paused endpoint resumes when re-enabled;
127.0.0.1 is refused unless allowed. The SIGKILL case is in test_webhooks_crash.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpline import create_app
from helpline.domain import outbound
from helpline.domain.webhook_delivery import backoff_seconds, parse_retry_after
from tests.conftest import make_settings, skip_or_fail
from tests.receiver import Received, Receiver
from tests.world import World, build_world

DOCS = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
FAST = {
    "webhook_allow_private": True,
    "webhook_backoff_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    "webhook_poll_seconds": 0.1,
    "webhook_timeout_seconds": 5.0,
    "router_enabled": False,
    "rate_limit_per_minute": 100_000,
}


def documented(language: str) -> str:
    """The code block of ``language`` in docs/integrations.md, exactly as printed there."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) == 1, f"expected one {language} block in {DOCS.name}"
    return blocks[0]


def python_verify() -> Callable[[str, str, bytes], bool]:
    namespace: dict[str, Any] = {}
    exec(compile(documented("python"), str(DOCS), "exec"), namespace)
    verify: Callable[[str, str, bytes], bool] = namespace["verify"]
    return verify


async def eventually(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def hook_app(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[FastAPI]:
    overrides = getattr(request, "param", {})
    application = create_app(make_settings(database_url, **{**FAST, **overrides}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def hw(hook_app: FastAPI) -> AsyncIterator[World]:
    transport = httpx.ASGITransport(app=hook_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield await build_world(hook_app, c)


async def register(world: World, url: str, events: list[str], **body: Any) -> dict[str, Any]:
    response = await world.call("admin", "POST", "/api/v1/admin/webhooks", {"url": url, "events": events, **body})
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()
    assert hook["secret"].startswith("whsec_")
    return hook


async def log_of(world: World, hook_id: str) -> list[dict[str, Any]]:
    response = await world.call("admin", "GET", f"/api/v1/admin/webhooks/{hook_id}/deliveries?limit=100")
    assert response.status_code == 200, response.text
    deliveries: list[dict[str, Any]] = response.json()["deliveries"]
    return deliveries


async def settled_log(world: World, hook_id: str, count: int) -> list[dict[str, Any]]:
    """The log once ``count`` deliveries are recorded and none is pending (the receiver answers first,
    the worker records the outcome just after)."""
    deadline = time.monotonic() + 20
    log = await log_of(world, hook_id)
    while len(log) < count or any(d["status"] == "pending" for d in log):
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.05)
        log = await log_of(world, hook_id)
    return log


async def test_every_subscribed_event_type_arrives_signed(hw: World) -> None:
    verify = python_verify()
    with Receiver() as everything, Receiver() as closes_only:
        hook = await register(hw, everything.url, ["*"])
        narrow = await register(hw, closes_only.url, ["conversation.closed"])
        services = hw.client._transport.app.state.services  # type: ignore[attr-defined]
        alice = hw.conversations["alice"]
        assert (await hw.send("alice", alice, "hello", "m-1")).status_code == 201
        reply = await hw.send("rep", alice, "hi there", "m-2")
        for kind in ("delivered", "read"):
            response = await hw.call(
                "alice",
                "POST",
                f"/api/v1/conversations/{alice}/receipts",
                {"type": kind, "entry_id": reply.json()["id"]},
            )
            assert response.status_code == 204, response.text
        member = {"queue_ids": [hw.queue_id]}
        assert (await hw.call("admin", "PATCH", f"/api/v1/admin/users/{hw.user_ids['rep']}", member)).status_code == 200
        assert (await hw.call("rep", "PUT", "/api/v1/me/presence", {"status": "online"})).status_code == 200
        await services.router.tick()  # bob's queued conversation is offered to rep
        async with services.store.read() as s:
            offer_id = next(
                e.data()["offer_id"] for e in await s.events_after(None, 0, 1000) if e.type == "offer.created"
            )
        assert (await hw.call("rep", "POST", f"/api/v1/offers/{offer_id}/decline")).status_code == 200
        await hw.customer("carol")
        carol = await hw.open_conversation("carol")
        await hw.assign(carol, "rep2")
        assert (await hw.call("rep", "POST", f"/api/v1/conversations/{alice}/close")).status_code == 200

        async with services.store.read() as s:
            stored = [e for e in await s.events_after(None, 0, 1000)]
        after_hook = [e for e in stored if e.id is not None and e.id > 0]
        expected_ids = {e.id for e in after_hook if json.loads(e.payload)["at"] >= hook["created_at"]}
        await eventually(
            lambda: {int(r.headers["helpline-event-id"]) for r in everything.accepted()} >= expected_ids,
            what="every event after registration",
        )
        seen_types = {json.loads(r.body)["type"] for r in everything.accepted()}
        assert seen_types >= {
            "conversation.created",
            "conversation.message",
            "conversation.participant_changed",
            "conversation.routing",
            "conversation.delivered",
            "conversation.read",
            "conversation.closed",
            "offer.created",
            "offer.revoked",
            "presence.changed",
        }
        by_id = {e.id: e.payload for e in stored}
        for request in everything.accepted():
            event = json.loads(request.body)
            assert request.headers["helpline-event-id"] == str(event["id"])
            assert request.headers["content-type"] == "application/json"
            assert verify(hook["secret"], request.headers["helpline-signature"], request.body)
            assert not verify(narrow["secret"], request.headers["helpline-signature"], request.body)
            assert not verify(hook["secret"], request.headers["helpline-signature"], request.body + b" ")
            assert request.body.decode() == by_id[event["id"]]  # the same object and id as on the stream
        await eventually(lambda: closes_only.accepted(), what="the closed event")
        assert {json.loads(r.body)["type"] for r in closes_only.accepted()} == {"conversation.closed"}
        assert all(verify(narrow["secret"], r.headers["helpline-signature"], r.body) for r in closes_only.all())
        log = await settled_log(hw, hook["id"], len(everything.accepted()))
        assert all(d["status"] == "delivered" for d in log)
        assert len(log) == len(everything.accepted()) and all(d["attempts"] == 1 for d in log), log


async def test_the_documented_javascript_check_verifies_a_real_delivery(hw: World) -> None:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    with Receiver() as receiver:
        hook = await register(hw, receiver.url, ["conversation.message"])
        await hw.send("alice", hw.conversations["alice"], "héllo ✓", "m-js")
        request = (await eventually(receiver.accepted, what="a delivery"))[0]
    harness = documented("javascript") + (
        "\nconst input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));"
        "\nconst body = Buffer.from(input.body, 'base64');"
        "\nconsole.log(JSON.stringify([verify(input.secret, input.header, body),"
        " verify(input.secret, input.header, Buffer.concat([body, Buffer.from(' ')])),"
        " verify('whsec_other', input.header, body),"
        " verify(input.secret, input.header.replace(/t=\\d+/, 't=1'), body)]));\n"
    )
    import base64

    payload = {
        "secret": hook["secret"],
        "header": request.headers["helpline-signature"],
        "body": base64.b64encode(request.body).decode(),
    }
    result = subprocess.run(
        [node, "-e", harness], input=json.dumps(payload), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, False, False, False]


async def test_three_failures_then_success_delivers_exactly_once_more_with_the_same_id(hw: World) -> None:
    answers = iter([500, 500, 500])

    def answer(_request: Received) -> int:
        return next(answers, 200)

    with Receiver(answer) as receiver:
        hook = await register(hw, receiver.url, ["conversation.message"])
        await hw.send("alice", hw.conversations["alice"], "retry me", "m-retry")
        await eventually(receiver.accepted, what="the accepted delivery")
        await asyncio.sleep(1.0)  # ten poll intervals and more than the longest backoff: nothing more comes
        requests = receiver.all()
    assert [r.status for r in requests] == [500, 500, 500, 200]
    assert len({r.headers["helpline-event-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    (entry,) = await settled_log(hw, hook["id"], 1)
    assert entry["status"] == "delivered" and entry["attempts"] == 4 and entry["last_status"] == 200


async def test_per_conversation_order_holds_under_concurrent_writers(hw: World) -> None:
    import random

    rng = random.Random(14)
    lock = threading.Lock()

    def flaky(_request: Received) -> int:
        with lock:
            roll = rng.random()
        time.sleep(roll * 0.01)
        return 500 if roll < 0.2 else 200

    conversations = [hw.conversations["alice"]]
    for name in ("dora", "erin", "finn"):
        await hw.customer(name)
        conversation = await hw.open_conversation(name)
        await hw.assign(conversation, "rep")
        conversations.append(conversation)
    owners = dict(zip(conversations, ["alice", "dora", "erin", "finn"], strict=True))
    with Receiver(flaky) as receiver:
        await register(hw, receiver.url, ["conversation.message"])

        async def writer(who: str, conversation: str, tag: str) -> None:
            for n in range(6):
                assert (await hw.send(who, conversation, f"{tag} {n}", f"{tag}-{n}")).status_code == 201

        await asyncio.gather(
            *(writer(owners[c], c, f"c{i}") for i, c in enumerate(conversations)),
            *(writer("rep", c, f"r{i}") for i, c in enumerate(conversations)),
        )
        await eventually(lambda: len(receiver.accepted()) >= 48, what="all 48 messages")
    per_conversation: dict[str, list[int]] = {}
    for request in receiver.accepted():
        event = json.loads(request.body)
        per_conversation.setdefault(event["conversation_id"], []).append(event["id"])
    assert len(per_conversation) == 4
    for ids in per_conversation.values():
        assert ids == sorted(ids) and len(ids) == len(set(ids)) == 12


@pytest.mark.parametrize("hook_app", [{"webhook_pause_after_failures": 3}], indirect=True)
async def test_a_paused_endpoint_resumes_when_re_enabled(hw: World, hook_app: FastAPI) -> None:
    healthy = threading.Event()

    def answer(_request: Received) -> int:
        return 200 if healthy.is_set() else 503

    with Receiver(answer) as receiver:
        hook = await register(hw, receiver.url, ["conversation.message"])
        await hw.send("alice", hw.conversations["alice"], "one", "p-1")

        async def paused() -> bool:
            response = await hw.call("admin", "GET", f"/api/v1/admin/webhooks/{hook['id']}")
            return bool(response.json()["paused"])

        deadline = time.monotonic() + 30
        while not await paused():
            assert time.monotonic() < deadline, "the endpoint was never paused"
            await asyncio.sleep(0.05)
        assert len(receiver.all()) == 3
        await hw.send("alice", hw.conversations["alice"], "two", "p-2")  # queued while paused
        await asyncio.sleep(0.5)
        assert len(receiver.all()) == 3  # nothing is sent to a paused endpoint
        metrics = (await hw.client.get("/metrics")).text
        assert "helpline_webhook_endpoints_paused 1.0" in metrics
        healthy.set()
        response = await hw.call("admin", "PATCH", f"/api/v1/admin/webhooks/{hook['id']}", {"enabled": True})
        assert response.status_code == 200 and response.json()["paused"] is False
        await eventually(lambda: len(receiver.accepted()) == 2, what="both messages after resuming")
        texts = [json.loads(r.body)["text"] for r in receiver.accepted()]
    assert texts == ["one", "two"]


async def test_test_event_redeliver_and_the_log(hw: World) -> None:
    verify = python_verify()
    with Receiver() as receiver:
        hook = await register(hw, receiver.url, ["conversation.message"])
        response = await hw.call("admin", "POST", f"/api/v1/admin/webhooks/{hook['id']}/test")
        assert response.status_code == 202, response.text
        test_id = response.json()["event_id"]
        first = (await eventually(receiver.accepted, what="the test event"))[0]
        assert json.loads(first.body)["type"] == "webhook.test"
        assert first.headers["helpline-event-id"] == test_id
        assert verify(hook["secret"], first.headers["helpline-signature"], first.body)

        await hw.send("alice", hw.conversations["alice"], "again", "rd-1")
        await eventually(lambda: len(receiver.accepted()) == 2, what="the message")
        log = await settled_log(hw, hook["id"], 2)
        message = next(d for d in log if d["event_type"] == "conversation.message")
        assert message["status"] == "delivered" and message["duration_ms"] is not None
        path = f"/api/v1/admin/webhooks/{hook['id']}/deliveries/{message['id']}/redeliver"
        assert (await hw.call("admin", "POST", path)).status_code == 202
        await eventually(lambda: len(receiver.accepted()) == 3, what="the redelivery")
        again = receiver.accepted()[2]
        assert (
            again.headers["helpline-event-id"] == str(message["event_id"]) and again.body == receiver.accepted()[1].body
        )

        rotated = await hw.call("admin", "POST", f"/api/v1/admin/webhooks/{hook['id']}/rotate-secret")
        assert rotated.status_code == 200 and rotated.json()["secret"] != hook["secret"]
        listed = (await hw.call("admin", "GET", "/api/v1/admin/webhooks")).json()
        assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
        await hw.send("alice", hw.conversations["alice"], "rotated", "rd-2")
        await eventually(lambda: len(receiver.accepted()) == 4, what="a delivery after rotation")
        latest = receiver.accepted()[3]
        assert verify(rotated.json()["secret"], latest.headers["helpline-signature"], latest.body)
        assert not verify(hook["secret"], latest.headers["helpline-signature"], latest.body)

    for who, status in (("rep", 403), ("supervisor", 403), ("alice", 403)):
        assert (await hw.call(who, "GET", "/api/v1/admin/webhooks")).status_code == status
    missing = await hw.call("admin", "GET", "/api/v1/admin/webhooks/whk_nope/deliveries")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = await hw.call("admin", "POST", "/api/v1/admin/webhooks", {"url": "ftp://x.example/", "events": ["*"]})
    assert bad.status_code == 422
    typing = await hw.call(
        "admin",
        "POST",
        "/api/v1/admin/webhooks",
        {"url": "https://x.example/", "events": ["conversation.typing_started"]},
    )
    assert typing.status_code == 422 and "stored event type" in typing.json()["detail"]
    assert (await hw.call("admin", "DELETE", f"/api/v1/admin/webhooks/{hook['id']}")).status_code == 204
    assert (await hw.call("admin", "GET", "/api/v1/admin/webhooks")).json() == []


@pytest.mark.parametrize("hook_app", [{"webhook_allow_private": False}], indirect=True)
async def test_private_targets_are_refused_unless_allowed(hw: World) -> None:
    with Receiver() as receiver:
        for url in (
            receiver.url,
            "http://localhost:9/hook",
            "http://[::1]:9/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://[::ffff:127.0.0.1]/",
        ):
            response = await hw.call("admin", "POST", "/api/v1/admin/webhooks", {"url": url, "events": ["*"]})
            assert response.status_code == 422, (url, response.text)
            assert "HELPLINE_WEBHOOK_ALLOW_PRIVATE" in response.json()["detail"]
        # At delivery time the address is checked again, after resolving (a name may point anywhere).
        sender = outbound.Sender(allow_private=False)
        with pytest.raises(outbound.Refused):
            await sender.post(receiver.url, b"{}", {}, 5)
        await sender.close()
        backend = outbound.GuardedBackend(allow_private=False)
        with pytest.raises(outbound.Refused):
            await backend.connect_tcp("localhost", receiver.port)
        assert receiver.all() == []
        allowing = outbound.Sender(allow_private=True)
        answer = await allowing.post(receiver.url, b"{}", {}, 5)
        await allowing.close()
        assert answer.status == 200 and len(receiver.all()) == 1


async def test_redirects_are_not_followed(hw: World) -> None:
    with Receiver(lambda r: (302, {"Location": "/elsewhere"}) if r.path == "/hook" else 200) as receiver:
        hook = await register(hw, receiver.url, ["conversation.message"])
        await hw.send("alice", hw.conversations["alice"], "moved?", "rdr-1")

        async def failed_once() -> list[dict[str, Any]]:
            return [d for d in await log_of(hw, hook["id"]) if d["attempts"] >= 1]

        deadline = time.monotonic() + 20
        while not (entries := await failed_once()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert entries[0]["last_status"] == 302 and "redirects are not followed" in entries[0]["last_error"]
        assert all(r.path == "/hook" for r in receiver.all())


def test_address_classification_and_backoff() -> None:
    for address in (
        "127.0.0.1",
        "10.0.0.1",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
    ):
        assert not outbound.is_public(address), address
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "1.1.1.1"):
        assert outbound.is_public(address), address
    settings = make_settings("sqlite://", webhook_backoff_seconds=5.0, webhook_backoff_max_seconds=3600.0)
    waits = [backoff_seconds(settings, n, None, 500) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        full = min(3600.0, 5.0 * 2 ** (n - 1))
        assert full / 2 <= wait <= full
    assert backoff_seconds(settings, 1, "120", 429) == 120.0
    assert backoff_seconds(settings, 1, "120", 500) <= 5.0  # Retry-After only on 429 and 503
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


@pytest.mark.postgres
async def test_two_nodes_share_the_outbox_without_sending_an_event_twice(postgres_url: str) -> None:
    """Two apps on one PostgreSQL database: both write events, both workers drain the one outbox."""
    from tests.conftest import empty_postgres

    await empty_postgres(postgres_url)
    first = create_app(make_settings(postgres_url, **FAST))
    second = create_app(make_settings(postgres_url, **FAST))
    with Receiver() as receiver:
        async with first.router.lifespan_context(first):
            transport = httpx.ASGITransport(app=first)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                world = await build_world(first, c)
                await register(world, receiver.url, ["conversation.message"])
                async with second.router.lifespan_context(second):  # it reads the endpoint when it opens
                    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://testserver")
                    async with other:
                        alice = world.conversations["alice"]

                        async def write(client: httpx.AsyncClient, tag: str) -> None:
                            for n in range(10):
                                response = await client.post(
                                    f"/api/v1/conversations/{alice}/messages",
                                    json={"id": f"{tag}-{n}", "text": f"{tag} {n}"},
                                    headers=world.auth("alice"),
                                )
                                assert response.status_code == 201, response.text

                        await asyncio.gather(write(c, "one"), write(other, "two"))
                        await eventually(lambda: len(receiver.accepted()) >= 20, what="all 20 messages")
                        await asyncio.sleep(0.5)  # nothing more comes: each event was claimed by one node
    ids = [json.loads(r.body)["id"] for r in receiver.accepted()]
    assert len(ids) == len(set(ids)) == 20
    assert ids == sorted(ids)  # one conversation: in order, whichever node sent each
