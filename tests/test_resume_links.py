"""Resume links (issue 12, offline continuity): the offline-reply email's link carries a signed, expiring
token for one customer and conversation, which `POST /api/v1/sessions/resume` exchanges for a customer
session on any browser. Forged, tampered, expired, wrong-purpose tokens and erased customers are refused
with a precise 401. Through a real SMTP server (aiosmtpd), on SQLite and PostgreSQL; and in Chromium,
a fresh browser opens the link and sees the rep's reply."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from helpline.domain.security import Tokens
from tests.browser import DemoServer, browser, demo_server_factory, new_page
from tests.conftest import SECRET
from tests.test_email import SmtpServer, body_of, carol, running, smtp, world_on
from tests.test_web_ui import assign, customer_says, expect, only_conversation, open_widget
from tests.world import World

__all__ = ["browser", "demo_server_factory", "new_page", "smtp"]  # fixtures, re-exported for pytest

SITE = "https://shop.example"
LINK = re.compile(r"(https?://\S+\?helpline_resume=[A-Za-z0-9._%-]+#helpline-chat)")
SESSION_FIELDS = {
    "access_token",
    "customer_id",
    "verified",
    "expires_in",
    "session_expires_in",
    "last_event_id",
    "pre_chat_fields",
}


def link_in(body: str) -> str:
    found = LINK.search(body)
    assert found, body
    return found.group(1)


def token_of(link: str) -> str:
    (token,) = parse_qs(urlsplit(link).query)["helpline_resume"]
    return token


async def resume(world: World, token: Any, origin: str | None = SITE) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    return await world.client.post("/api/v1/sessions/resume", json={"token": token}, headers=headers)


def refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "not_authenticated" and problem["reason"] == reason, problem


async def test_the_emailed_link_resumes_the_conversation_on_a_fresh_browser(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running(database_url, smtp.url) as application, world_on(application) as world:
        conversation = await carol(world)
        assert (await world.send("rep", conversation, "Yes, it ships today.", "rep-1")).status_code == 201
        (message,) = await smtp.inbox.wait_for(1)
        link = link_in(body_of(message))
        assert link.startswith(f"{SITE}/?helpline_resume=")

        # A browser that never saw the chat: no Authorization, only the link's token.
        answer = await resume(world, token_of(link))
        assert answer.status_code == 201, answer.text
        session = answer.json()
        assert set(session) == SESSION_FIELDS | {"conversation_id"}
        assert session["customer_id"] == world.customer_ids["carol"] and session["conversation_id"] == conversation
        assert session["access_token"] != world.tokens["carol"]
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        entries = await world.client.get(f"/api/v1/conversations/{conversation}/entries", headers=headers)
        assert entries.status_code == 200
        texts = [e["text"] for e in entries.json()["entries"] if e["type"] == "conversation.message"]
        assert texts == ["Is my order on its way?", "Yes, it ships today."]
        # The customer goes on writing from there, as carol.
        said = await world.client.post(
            f"/api/v1/conversations/{conversation}/messages", json={"id": "c-2", "text": "Great!"}, headers=headers
        )
        assert said.status_code == 201 and said.json()["author"]["id"] == world.customer_ids["carol"]
        # A link may be opened again (another device) until it expires.
        assert (await resume(world, token_of(link))).status_code == 201
        # The token is for the exchange only: never a bearer credential.
        as_bearer = await world.client.get(
            f"/api/v1/conversations/{conversation}", headers={"Authorization": f"Bearer {token_of(link)}"}
        )
        assert as_bearer.status_code == 401


async def test_forged_tampered_expired_and_wrong_purpose_tokens_are_refused(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running(database_url, smtp.url) as application, world_on(application) as world:
        conversation = await carol(world)
        customer = world.customer_ids["carol"]
        tokens = Tokens(SECRET)
        good = tokens.issue_resume(customer, conversation, 60)
        assert (await resume(world, good)).status_code == 201

        header, payload, signature = good.split(".")
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        refused(await resume(world, f"{header}.{payload}.{flipped}"), "invalid")
        # Another conversation written into the claims, the signature kept: refused.
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["cid"] = world.conversations["alice"]
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        refused(await resume(world, f"{header}.{forged_payload}.{signature}"), "invalid")
        # Signed with another key, or with no signature at all.
        refused(
            await resume(world, Tokens("another-secret-" + "x" * 32).issue_resume(customer, conversation, 60)),
            "invalid",
        )
        unsigned = jwt.encode({**claims, "cid": conversation}, None, algorithm="none")  # type: ignore[arg-type]
        refused(await resume(world, unsigned), "invalid")
        refused(await resume(world, "not-a-token"), "invalid")

        expired = await resume(world, tokens.issue_resume(customer, conversation, -5))
        refused(expired, "expired")
        assert "expired" in expired.json()["detail"]

        refused(await resume(world, world.tokens["carol"]), "wrong_purpose")  # an access token
        refused(await resume(world, world.tokens["rep"]), "wrong_purpose")
        ticket = (await world.call("rep", "POST", "/api/v1/stream-tickets")).json()["ticket"]
        refused(await resume(world, ticket), "wrong_purpose")

        # A conversation that is not the customer's, or no longer exists.
        refused(
            await resume(world, tokens.issue_resume(customer, world.conversations["alice"], 60)), "conversation_gone"
        )
        refused(await resume(world, tokens.issue_resume(customer, "conv-nowhere", 60)), "conversation_gone")

        # From a site the deployment does not allow.
        other_site = await resume(world, good, origin="https://evil.example")
        assert other_site.status_code == 403 and other_site.json()["code"] == "permission_denied"

        for body in ({}, {"token": ""}, {"token": "x" * 5000}, {"token": 7}, {"token": good, "extra": 1}):
            bad = await world.client.post("/api/v1/sessions/resume", json=body)
            assert bad.status_code == 422 and bad.json()["code"] == "validation_error", body


async def test_a_link_of_an_erased_customer_is_refused(database_url: str, smtp: SmtpServer) -> None:
    async with running(database_url, smtp.url) as application, world_on(application) as world:
        conversation = await carol(world)
        assert (await world.send("rep", conversation, "Yes, it ships today.", "rep-1")).status_code == 201
        (message,) = await smtp.inbox.wait_for(1)
        token = token_of(link_in(body_of(message)))
        erased = await world.call("admin", "DELETE", f"/api/v1/admin/customers/{world.customer_ids['carol']}")
        assert erased.status_code == 200, erased.text
        refused(await resume(world, token), "customer_gone")


async def test_the_link_lives_as_long_as_configured(database_url: str, smtp: SmtpServer) -> None:
    async with (
        running(database_url, smtp.url, resume_link_seconds=3600) as application,
        world_on(application) as world,
    ):
        conversation = await carol(world)
        before = int(time.time())
        assert (await world.send("rep", conversation, "Yes, it ships today.", "rep-1")).status_code == 201
        (message,) = await smtp.inbox.wait_for(1)
        claims = jwt.decode(token_of(link_in(body_of(message))), options={"verify_signature": False})
        assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600
        assert claims["sub"] == world.customer_ids["carol"] and claims["cid"] == conversation


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_a_fresh_browser_opens_the_emailed_link_and_sees_the_reply(
    demo_server_factory: Callable[..., DemoServer], new_page: Callable[[], Any]
) -> None:
    smtp_server = SmtpServer().start()
    try:
        server = demo_server_factory(smtp_url=smtp_server.url, offline_email_after_seconds=0.0, outbox_poll_seconds=0.2)
        customer = open_widget(new_page(), server)
        customer_says(customer, "Do you roast decaf?")
        customer.get_by_label("No one is available right now. Leave your email and we will send the reply there.").fill(
            "gus@example.com"
        )
        customer.get_by_role("button", name="Save email").click()
        expect(customer.get_by_text("the reply goes to gus@example.com")).to_be_visible()
        customer.context.close()  # the customer leaves, and this browser's storage with it

        supervisor = server.login("supervisor")["access_token"]
        conversation = only_conversation(server, supervisor)
        assign(server, conversation["id"], "rep")
        deadline = time.monotonic() + 15
        while server.app.state.streams.per_identity.get(conversation["customer_id"]):
            assert time.monotonic() < deadline, "the customer's stream never ended"
            time.sleep(0.05)
        rep = server.login("rep")["access_token"]
        path = f"/api/v1/conversations/{conversation['id']}/messages"
        assert server.call(rep, "POST", path, {"id": "r1", "text": "Yes: the Harbor Decaf."}).status_code == 201
        deadline = time.monotonic() + 30
        while not smtp_server.inbox.received():
            assert time.monotonic() < deadline, "no email arrived"
            time.sleep(0.05)
        (message,) = smtp_server.inbox.received()
        link = link_in(body_of(message))
        assert link.startswith(f"{server.url}/?helpline_resume=")

        # Another browser (a fresh context: nothing in its storage) opens the link.
        fresh = new_page()
        fresh.goto(link)
        log = fresh.locator(".msg__text")
        expect(log).to_have_text(["Do you roast decaf?", "Yes: the Harbor Decaf."])
        # The token has left the address bar (and the history); the session is stored like any other.
        assert "helpline_resume" not in fresh.url and fresh.url.endswith("/#helpline-chat")
        stored = fresh.evaluate("() => Object.entries(localStorage).find(([k]) => k.startsWith('helpline:'))[1]")
        state = json.loads(stored)
        assert state["customerId"] == conversation["customer_id"] and state["conversationId"] == conversation["id"]
        # It goes on as that customer: a reload keeps the chat, and what it says reaches the rep.
        fresh.reload()
        expect(log).to_have_text(["Do you roast decaf?", "Yes: the Harbor Decaf."])
        customer_says(fresh, "Lovely, thank you")
        entries = server.call(rep, "GET", f"/api/v1/conversations/{conversation['id']}/entries").json()["entries"]
        assert [e["text"] for e in entries if e["type"] == "conversation.message"][-1] == "Lovely, thank you"

        # A damaged link opens the widget with the reason, and no one's chat.
        other = new_page()
        other.goto(link.replace("helpline_resume=", "helpline_resume=x"))
        expect(other.get_by_text("This link no longer opens a chat.")).to_be_visible()
        expect(other.locator(".msg__text")).to_have_count(0)
        assert fresh.errors == [] and other.errors == []
    finally:
        smtp_server.stop()
