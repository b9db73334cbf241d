"""The email outbox (issue 12): offline replies and transcripts reach a real SMTP server (aiosmtpd, in the
test process) once: also across a server restart with a row pending, and with two nodes draining at once."""

from __future__ import annotations

import asyncio
import email
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from helpline import create_app
from helpline.config import ConfigurationError
from helpline.mail import parse_smtp_url
from helpline.store import schema
from tests.conftest import free_port, make_settings
from tests.world import World, build_world

pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """What the SMTP server received, in order."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def received(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.received()) < count:
            assert time.monotonic() < deadline, f"{len(self.received())} of {count} emails arrived"
            await asyncio.sleep(0.05)
        return self.received()


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def running(database_url: str, smtp_url: str, **overrides: Any) -> AsyncIterator[FastAPI]:
    """A node: the app's lifespan (its outbox worker among it) for as long as the block runs."""
    options: dict[str, Any] = {
        "router_enabled": False,
        "smtp_url": smtp_url,
        "smtp_from": "Harbor & Pine <help@shop.example>",
        "offline_email_after_seconds": 0.0,
        "outbox_poll_seconds": 0.2,
        "outbox_retry_seconds": 0.2,
    }
    settings = make_settings(database_url, **{**options, **overrides})
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@asynccontextmanager
async def world_on(application: FastAPI, *, build: bool = True) -> AsyncIterator[World]:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        world = await build_world(application, client) if build else World(client)
        yield world


async def outbox_rows(application: FastAPI) -> list[Any]:
    async with application.state.services.store.read() as s:
        rows = await s.conn.execute(select(schema.email_outbox).order_by(schema.email_outbox.c.id))
        return list(rows)


async def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def carol(world: World) -> str:
    """A customer who left an email address, in a conversation assigned to the rep."""
    await world.customer("carol", email="carol@example.com")
    conversation = await world.open_conversation("carol", id="conv-carol")
    await world.assign(conversation, "rep")
    await world.send("carol", conversation, "Is my order on its way?", "carol-1")
    return conversation


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


async def test_a_reply_to_a_customer_who_left_is_emailed_once_with_a_link_back(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running(database_url, smtp.url) as application, world_on(application) as world:
        conversation = await carol(world)
        reply = await world.send("rep", conversation, "Yes, it ships today.", "rep-1")
        assert reply.status_code == 201
        (message,) = await smtp.inbox.wait_for(1)
        assert message["To"] == "carol@example.com" and message["From"] == "Harbor & Pine <help@shop.example>"
        assert "replied to your chat" in message["Subject"]
        body = body_of(message)
        assert "Yes, it ships today." in body and "https://shop.example/?helpline_resume=" in body
        assert "Is my order on its way?" not in body  # the customer's own words are not sent back
        await wait_until(lambda: _all_sent(application))
        await asyncio.sleep(1.0)  # five more polls of the worker: nothing is sent again
        assert len(smtp.inbox.received()) == 1


async def _all_sent(application: FastAPI) -> bool:
    rows = await outbox_rows(application)
    return bool(rows) and all(row.status == "sent" for row in rows)


async def test_replies_wait_for_customers_who_are_around(database_url: str, smtp: SmtpServer) -> None:
    async with (
        running(database_url, smtp.url, offline_email_after_seconds=3600.0, outbox_enabled=False) as application,
        world_on(application) as world,
    ):
        conversation = await carol(world)  # carol just wrote: she is here
        await world.send("rep", conversation, "One moment, please.", "rep-1")
        await world.customer("dave")  # no address
        other = await world.open_conversation("dave", id="conv-dave")
        await world.assign(other, "rep")
        await world.send("rep", other, "Hello?", "rep-2")
        assert await outbox_rows(application) == []


async def test_several_replies_before_the_email_leaves_make_one_email(database_url: str, smtp: SmtpServer) -> None:
    async with running(database_url, smtp.url, outbox_enabled=False) as application, world_on(application) as world:
        conversation = await carol(world)
        for n, text in enumerate(["It left the warehouse.", "Tracking: HP-123.", "Anything else?"]):
            assert (await world.send("rep", conversation, text, f"rep-{n}")).status_code == 201
        assert (await world.send("rep", conversation, "Anything else?", "rep-2")).status_code == 200  # a retry
        assert await application.state.services.outbox.drain() == 1
        (message,) = await smtp.inbox.wait_for(1)
        body = body_of(message)
        assert body.count("Anything else?") == 1
        assert body.index("It left the warehouse.") < body.index("Tracking: HP-123.") < body.index("Anything else?")
        assert await application.state.services.outbox.drain() == 0


async def test_a_pending_email_survives_a_restart_and_goes_out_once(database_url: str) -> None:
    port = free_port()  # nothing listens here yet: the first node cannot send
    async with running(database_url, f"smtp://127.0.0.1:{port}") as first, world_on(first) as world:
        conversation = await carol(world)
        await world.send("rep", conversation, "Your refund is on its way.", "rep-1")

        async def tried() -> bool:
            rows = await outbox_rows(first)
            return bool(rows) and rows[0].attempts >= 1 and rows[0].locked_until is None

        await wait_until(tried)
        (row,) = await outbox_rows(first)
        assert row.status == "pending" and "Connection" in (row.last_error or "")
    # The first node has stopped with the row pending; the SMTP server comes up, then a new node starts.
    server = SmtpServer(port).start()
    try:
        async with running(database_url, server.url) as second:
            (message,) = await server.inbox.wait_for(1)
            assert "Your refund is on its way." in body_of(message)
            await wait_until(lambda: _all_sent(second))
            await asyncio.sleep(1.0)
            assert len(server.inbox.received()) == 1
            (row,) = await outbox_rows(second)
            assert row.status == "sent" and row.attempts >= 2
    finally:
        server.stop()


async def test_two_nodes_draining_at_once_send_each_email_once(database_url: str, smtp: SmtpServer) -> None:
    async with (
        running(database_url, smtp.url, outbox_enabled=False) as first,
        running(database_url, smtp.url, outbox_enabled=False) as second,
        world_on(first) as world,
    ):
        conversation = await carol(world)
        await world.call("carol", "POST", f"/api/v1/conversations/{conversation}/close", {})
        outbox = first.state.services.outbox
        for n in range(3):
            await outbox.request_transcript(
                await first.state.services.accounts.principal(world.tokens["carol"]), conversation, f"c{n}@example.com"
            )
        await asyncio.gather(first.state.services.outbox.drain(), second.state.services.outbox.drain())
        while await first.state.services.outbox.drain() or await second.state.services.outbox.drain():
            pass
        messages = await smtp.inbox.wait_for(3)
        await asyncio.sleep(0.3)
        assert sorted(m["To"] for m in smtp.inbox.received()) == ["c0@example.com", "c1@example.com", "c2@example.com"]
        assert len(messages) == 3


async def test_a_customer_asks_for_the_transcript(database_url: str, smtp: SmtpServer) -> None:
    async with running(database_url, smtp.url) as application, world_on(application) as world:
        conversation = await carol(world)
        await world.send("rep", conversation, "It ships today.", "rep-1")
        await world.call("carol", "POST", f"/api/v1/conversations/{conversation}/close", {})
        await smtp.inbox.wait_for(1)  # the offline reply (carol has no stream)
        path = f"/api/v1/conversations/{conversation}/transcript"
        assert (await world.call("rep", "POST", path, {"email": "x@example.com"})).status_code == 403
        assert (await world.call("alice", "POST", path, {"email": "x@example.com"})).status_code == 404
        assert (await world.call("carol", "POST", path, {"email": "not an address"})).status_code == 422
        accepted = await world.call("carol", "POST", path, {"email": "carol@home.example"})
        assert accepted.status_code == 202 and accepted.json() == {"status": "queued"}
        messages = await smtp.inbox.wait_for(2)
        transcript = messages[1]
        assert transcript["To"] == "carol@home.example" and "transcript" in transcript["Subject"]
        body = body_of(transcript)
        assert body.index("Is my order on its way?") < body.index("It ships today.")
        for _ in range(2):
            assert (await world.call("carol", "POST", path, {"email": "carol@home.example"})).status_code == 202
        assert (await world.call("carol", "POST", path, {"email": "carol@home.example"})).status_code == 429


async def test_without_smtp_no_email_is_promised(sqlite_url: str) -> None:
    application = create_app(make_settings(sqlite_url, router_enabled=False))
    async with application.router.lifespan_context(application), world_on(application) as world:
        conversation = await carol(world)
        await world.send("rep", conversation, "Hi", "rep-1")
        refused = await world.call(
            "carol", "POST", f"/api/v1/conversations/{conversation}/transcript", {"email": "a@b.example"}
        )
        assert refused.status_code == 409 and refused.json()["code"] == "conflict"
        assert await outbox_rows(application) == []


def test_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://mail.example:2525")
    assert (plain.host, plain.port, plain.tls, plain.starttls, plain.username) == (
        "mail.example",
        2525,
        False,
        False,
        None,
    )
    secure = parse_smtp_url("smtp://me%40x:p%2Fw@mail.example?starttls=1")
    assert (secure.port, secure.starttls, secure.username, secure.password) == (25, True, "me@x", "p/w")
    assert "p/w" not in secure.redacted()
    assert parse_smtp_url("smtps://mail.example").port == 465
    for bad in ("http://mail.example", "smtp://", "smtp://mail.example:notaport"):
        with pytest.raises(ConfigurationError):
            parse_smtp_url(bad)


async def test_a_customer_leaves_an_address_while_no_one_is_there(database_url: str, smtp: SmtpServer) -> None:
    async with running(database_url, smtp.url) as application, world_on(application) as world:
        await world.customer("erin")
        conversation = await world.open_conversation("erin", id="conv-erin")
        await world.send("erin", conversation, "Do you ship to Norway?", "erin-1")
        assert (await world.call("erin", "PUT", "/api/v1/me/contact", {"email": "bad"})).status_code == 422
        assert (await world.call("rep", "PUT", "/api/v1/me/contact", {"email": "r@x.example"})).status_code == 403
        left = await world.call("erin", "PUT", "/api/v1/me/contact", {"email": "erin@example.com"})
        assert left.status_code == 200 and left.json()["email"] == "erin@example.com"
        await world.assign(conversation, "rep")
        await world.send("rep", conversation, "We do, in 3-5 days.", "rep-1")
        (message,) = await smtp.inbox.wait_for(1)
        assert message["To"] == "erin@example.com" and "We do, in 3-5 days." in body_of(message)


def test_a_customer_with_a_stream_open_gets_no_email_until_the_stream_is_gone(tmp_path: Any) -> None:
    """Over real sockets: the customer's open SSE stream is what says "here"."""
    from tests.browser import DemoServer

    smtp_server = SmtpServer().start()
    database = tmp_path / "live.db"
    server = DemoServer(
        f"sqlite:///{database}",
        smtp_url=smtp_server.url,
        offline_email_after_seconds=0.0,
        outbox_poll_seconds=0.2,
        router_enabled=False,
    )
    server.start()
    try:
        session = httpx.post(
            f"{server.url}/api/v1/deployments/demo/sessions", json={"email": "fay@example.com"}, timeout=10
        ).json()
        token = session["access_token"]
        conversation = server.call(token, "POST", "/api/v1/conversations", {"id": "conv-fay"}).json()["id"]
        server.call(token, "POST", f"/api/v1/conversations/{conversation}/messages", {"id": "f1", "text": "Hi"})
        supervisor = server.login("supervisor")["access_token"]
        rep = server.login("rep")
        server.call(supervisor, "POST", f"/api/v1/conversations/{conversation}/assign", {"user_id": rep["user"]["id"]})
        ticket = server.call(token, "POST", "/api/v1/stream-tickets").json()["ticket"]
        opened = threading.Event()
        close = threading.Event()

        def hold_stream() -> None:
            with httpx.stream("GET", f"{server.url}/api/v1/events?ticket={ticket}", timeout=30) as response:
                for line in response.iter_lines():
                    if line.startswith("event: stream.open"):
                        opened.set()
                    if close.is_set():
                        return

        holder = threading.Thread(target=hold_stream, daemon=True)
        holder.start()
        assert opened.wait(15)
        reply = server.call(
            rep["access_token"],
            "POST",
            f"/api/v1/conversations/{conversation}/messages",
            {"id": "r1", "text": "Hello!"},
        )
        assert reply.status_code == 201

        def rows() -> list[tuple[str, str]]:
            with sqlite3.connect(database) as db:
                return db.execute("SELECT recipient, body FROM email_outbox").fetchall()

        assert rows() == []  # she is here: the reply reached her stream
        close.set()
        # The next event ends the reader; then the server notices the stream is gone.
        server.call(rep["access_token"], "POST", f"/api/v1/conversations/{conversation}/typing", {"state": "started"})
        holder.join(15)
        deadline = time.monotonic() + 15
        while session["customer_id"] in server.app.state.streams.per_identity:
            assert time.monotonic() < deadline, "the server never noticed the stream was closed"
            time.sleep(0.05)
        server.call(
            rep["access_token"],
            "POST",
            f"/api/v1/conversations/{conversation}/messages",
            {"id": "r2", "text": "Still there?"},
        )
        deadline = time.monotonic() + 30
        while not smtp_server.inbox.received():
            assert time.monotonic() < deadline, "no email"
            time.sleep(0.05)
        (message,) = smtp_server.inbox.received()
        assert message["To"] == "fay@example.com" and "Still there?" in body_of(message)
        assert "Hello!" not in body_of(message)
    finally:
        server.stop()
        smtp_server.stop()


async def test_an_address_from_the_pre_chat_form_is_used(database_url: str, smtp: SmtpServer) -> None:
    async with running(database_url, smtp.url, outbox_enabled=False) as application, world_on(application) as world:
        email_field = {"name": "email", "label": "Email", "type": "email", "required": False, "options": []}
        await application.state.services.accounts.update_deployment(
            world.deployment_id, {"pre_chat_fields": [email_field]}
        )  # the form must ask for an address before an answer to it is accepted
        await world.customer("hal")
        conversation = await world.open_conversation("hal", id="conv-hal", pre_chat={"email": "hal@example.com"})
        await world.assign(conversation, "rep")
        await world.send("rep", conversation, "Got it.", "rep-1")
        assert await application.state.services.outbox.drain() == 1
        (message,) = await smtp.inbox.wait_for(1)
        assert message["To"] == "hal@example.com"
