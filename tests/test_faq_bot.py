"""Bots with hand-off, end to end: examples/faq_bot.py against a real server on a socket.

The bot is the example as shipped, with the FAQ file as shipped, on the Python client with an API key
acting as its user. It answers a known question, escalates an unknown one (the summary becomes a staff
note the rep who takes over reads; the customer sees "Connecting you with a person" and never the
note), a customer's "talk to a person" escalates at once, and the queue stats count contained vs
escalated. In Chromium, the rep's console shows the summary labelled and on top, and the wallboard the
bot's figures and the rating.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from helpline.client import Client
from helpline.config import Settings
from helpline.domain.accounts import Accounts
from helpline.store import open_store
from tests.browser import CHROMIUM, CHROMIUM_ARGS, console_error
from tests.conftest import LiveServer, make_settings, skip_or_fail
from tests.test_web_ui import expect

pytestmark = pytest.mark.timeout(120)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PASSWORD = "correct-horse-battery"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faq_bot", EXAMPLES / "faq_bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def seed(settings: Settings) -> dict[str, str]:
    """The contact center: an admin, a person in the queue, and the bot fronting it (not a member)."""
    store = await open_store(settings.database_url)
    try:
        accounts = Accounts(store, settings)
        admin = await accounts.create_user(
            "admin", PASSWORD, ["chat_user", "admin", "supervisor", "access_conversation_entries"]
        )
        queue = await accounts.create_queue("support")
        rep = await accounts.create_user(
            "riley", PASSWORD, ["chat_user", "chat_rep", "access_conversation_entries"], queue_ids=[queue.id]
        )
        bot = await accounts.create_user("faqbot", PASSWORD, ["chat_user", "access_conversation_entries"])
        await accounts.create_deployment("web", "support", ["https://shop.example"])
        return {"admin": admin.id, "rep": rep.id, "bot": bot.id, "queue": queue.id}
    finally:
        await store.close()


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    settings = make_settings(database_url, router_tick_seconds=0.2, rate_limit_per_minute=100_000)
    ids = asyncio.run(seed(settings))
    live = LiveServer(settings).start()
    try:
        yield live, ids
    finally:
        live.stop()


@contextmanager
def chromium() -> Iterator[Callable[[], Any]]:
    """Pages for the console checks, in a Chromium started and stopped inside the test: Playwright's sync
    API holds the thread's event loop while it runs, and the PostgreSQL fixtures need that loop after."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium); browser tests need Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)

        def open_page() -> Any:
            context = instance.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(10_000)
            page = context.new_page()
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            page.on("console", lambda message: console_error(page, message))
            return page

        try:
            yield open_page
        finally:
            instance.close()


def console(page: Any, live: LiveServer, username: str) -> Any:
    page.goto(f"{live.url}/console")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection")).to_have_text(re.compile("Live"))
    return page


def test_the_faq_bot_answers_what_it_knows_and_hands_the_rest_to_a_person(
    server: tuple[LiveServer, dict[str, str]],
) -> None:
    live, ids = server
    http = httpx.Client(base_url=live.url, timeout=10)

    def call(token: str, method: str, path: str, body: Any = None) -> httpx.Response:
        return http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

    admin = http.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()["access_token"]
    rep = http.post("/api/v1/auth/login", json={"username": "riley", "password": PASSWORD}).json()["access_token"]
    assert call(admin, "PUT", f"/api/v1/admin/queues/{ids['queue']}/bot", {"user_id": ids["bot"]}).status_code == 200
    key = call(
        admin,
        "POST",
        "/api/v1/admin/api-keys",
        {"name": "faqbot", "permissions": ["chat_user", "access_conversation_entries"], "user_id": ids["bot"]},
    ).json()["key"]
    assert call(rep, "PUT", "/api/v1/me/presence", {"status": "online"}).status_code == 200

    example = load_example()
    bot_client = Client(live.url, token=key)
    bot = example.FaqBot(bot_client, example.load_faq(EXAMPLES / "faq.json"))
    running = threading.Thread(target=bot.run, daemon=True)
    running.start()
    time.sleep(0.5)  # the bot's stream opens (it reads live events only)

    def customer(name: str) -> tuple[str, str]:
        token = http.post("/api/v1/deployments/web/sessions", json={"display_name": name}).json()["access_token"]
        created = call(token, "POST", "/api/v1/conversations", {})
        assert created.status_code == 201, created.text
        assert created.json()["assignee_id"] == ids["bot"] and created.json()["bot_id"] == ids["bot"]
        return token, created.json()["id"]

    def texts(token: str, conversation: str) -> list[str]:
        entries = call(token, "GET", f"/api/v1/conversations/{conversation}/entries").json()["entries"]
        return [e.get("text", "") for e in entries if e["type"] == "conversation.message"]

    try:
        ada, first = customer("Ada")
        wait_for(lambda: any("FAQ bot" in t for t in texts(ada, first)), "the greeting")
        sent = call(
            ada, "POST", f"/api/v1/conversations/{first}/messages", {"id": "q1", "text": "What are your opening hours?"}
        )
        assert sent.status_code == 201
        wait_for(lambda: any("Monday to Friday" in t for t in texts(ada, first)), "the known answer")
        assert call(ada, "GET", f"/api/v1/conversations/{first}").json()["status"] == "assigned"

        question = "My parcel arrived crushed and the cat is upset"
        call(ada, "POST", f"/api/v1/conversations/{first}/messages", {"id": "q2", "text": question})
        wait_for(lambda: "Connecting you with a person" in texts(ada, first), "the hand-off message")
        conversation = call(ada, "GET", f"/api/v1/conversations/{first}").json()
        assert conversation["escalated_at"] is not None and conversation["assignee_id"] != ids["bot"]
        customer_entries = call(ada, "GET", f"/api/v1/conversations/{first}/entries").json()["entries"]
        assert not [e for e in customer_entries if e["type"] == "conversation.note"]  # staff only
        assert any(e["type"] == "conversation.routing" and e["state"] == "escalated" for e in customer_entries)

        # The person in the queue is offered it, takes it, and reads the bot's summary.
        def offer() -> str | None:
            events = call(rep, "GET", "/api/v1/events/poll?after=0&timeout=1").json()["events"]
            offers = [e for e in events if e["type"] == "offer.created" and e["offer_conversation_id"] == first]
            return offers[-1]["offer_id"] if offers else None

        offer_id = wait_for(offer, "the offer to the rep")
        assert call(rep, "POST", f"/api/v1/offers/{offer_id}/accept").status_code == 200
        staff_entries = call(rep, "GET", f"/api/v1/conversations/{first}/entries").json()["entries"]
        (note,) = [e for e in staff_entries if e["type"] == "conversation.note"]
        assert note["escalation"] is True and question in note["text"] and note["author"]["id"] == ids["bot"]

        # Asking for a person escalates at once; saying thanks lets the bot close (contained).
        bob, second = customer("Bob")
        call(
            bob,
            "POST",
            f"/api/v1/conversations/{second}/messages",
            {"id": "b1", "text": "Can I talk to a person please"},
        )
        wait_for(lambda: "Connecting you with a person" in texts(bob, second), "the customer's own hand-off")
        cleo, third = customer("Cleo")
        call(
            cleo,
            "POST",
            f"/api/v1/conversations/{third}/messages",
            {"id": "c1", "text": "How long does shipping take?"},
        )
        wait_for(lambda: any("ship within" in t for t in texts(cleo, third)), "the shipping answer")
        call(cleo, "POST", f"/api/v1/conversations/{third}/messages", {"id": "c2", "text": "thanks, that's all"})
        wait_for(lambda: call(cleo, "GET", f"/api/v1/conversations/{third}").json()["status"] == "closed", "the close")
        dora, fourth = customer("Dora")  # the widget's button: the customer escalates directly
        pressed = call(dora, "POST", f"/api/v1/conversations/{fourth}/escalate", {})
        assert pressed.status_code == 202 and pressed.json()["escalated_at"] is not None
        assert call(dora, "POST", f"/api/v1/conversations/{fourth}/escalate", {}).status_code == 409

        supervisor_view = call(admin, "GET", "/api/v1/queues/stats")
        assert supervisor_view.status_code == 200, supervisor_view.text
        (stats,) = [q for q in supervisor_view.json() if q["queue_id"] == ids["queue"]]
        assert (stats["bot_contained_today"], stats["bot_escalated_today"]) == (1, 3)

        # The console: the rep reads the summary labelled, on top; the wallboard shows the bot and the rating.
        assert call(cleo, "POST", f"/api/v1/conversations/{third}/rating", {"score": 4}).status_code == 201
        with chromium() as new_page:
            riley = console(new_page(), live, "riley")
            riley.locator("#conversation-list .conv", has_text="Ada").click()
            pinned = riley.locator("#escalation-summary")
            expect(pinned).to_be_visible()
            expect(pinned).to_contain_text("Escalation summary")
            expect(pinned).to_contain_text(question)
            expect(riley.locator("#transcript .note-entry--escalation")).to_contain_text("Escalation summary")
            expect(riley.locator("#integrations-link")).to_be_hidden()  # not an admin
            board = console(new_page(), live, "admin")
            expect(board.get_by_role("link", name="Integrations")).to_have_attribute("href", "/console/integrations")
            board.get_by_role("button", name="Wallboard").click()
            support = board.locator('#wallboard-queues tr[data-queue="support"]')
            expect(support.locator('[data-field="bot"]')).to_have_text("1 / 3")
            expect(support.locator('[data-field="rating"]')).to_have_text("4.0 / 5 (1 rating)")
            assert riley.errors == [] and board.errors == []
    finally:
        bot_client.close()
        running.join(timeout=15)
        http.close()


def test_a_silent_bot_never_strands_a_customer(sqlite_url: str) -> None:
    """The bot is down: the customer's unanswered message goes to people after bot_silence_seconds."""
    settings = make_settings(sqlite_url, bot_silence_seconds=1.0, rate_limit_per_minute=100_000)
    ids = asyncio.run(seed(settings))
    live = LiveServer(settings).start()
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            run_silent_bot_scenario(http, ids)
    finally:
        live.stop()


def run_silent_bot_scenario(http: httpx.Client, ids: dict[str, str]) -> None:
    admin = http.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()["access_token"]
    admin_auth = {"Authorization": f"Bearer {admin}"}
    assert (
        http.put(
            f"/api/v1/admin/queues/{ids['queue']}/bot", json={"user_id": ids["bot"]}, headers=admin_auth
        ).status_code
        == 200
    )
    token = http.post("/api/v1/deployments/web/sessions", json={}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    conversation = http.post("/api/v1/conversations", json={}, headers=auth).json()
    assert conversation["assignee_id"] == ids["bot"]
    sent = http.post(
        f"/api/v1/conversations/{conversation['id']}/messages", json={"id": "m1", "text": "hello?"}, headers=auth
    )
    assert sent.status_code == 201

    def escalated() -> bool:
        found = http.get(f"/api/v1/conversations/{conversation['id']}", headers=auth).json()
        return found["escalated_at"] is not None

    wait_for(escalated, "the hand-off of an unanswered customer")
    entries = http.get(f"/api/v1/conversations/{conversation['id']}/entries", headers=admin_auth).json()["entries"]
    (note,) = [e for e in entries if e["type"] == "conversation.note"]
    assert "did not answer" in note["text"] and note["escalation"] is True
