"""The demo site's chat widget and the console, driven in Debian's chromium through Playwright.

Each test runs a demo server on a real socket (``--demo`` seeds the ``demo`` deployment and the staff
users) and drives one browser context per person. Conditions are awaited with Playwright's ``expect``
and ``wait_for_*`` (never a fixed sleep), and every test has a timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.browser import DEMO_PASSWORD, DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EVENT_TYPES = [
    "conversation.created",
    "conversation.message",
    "conversation.participant_changed",
    "conversation.routing",
    "conversation.typing_started",
    "conversation.typing_stopped",
    "conversation.delivered",
    "conversation.read",
    "conversation.closed",
    "offer.created",
    "offer.revoked",
    "presence.changed",
    "queue.stats",
    "stream.reconnect",
    "stream.reset",
]


def expect(target: Any) -> Any:
    """Playwright's ``expect`` with our default wait (imported late: the fixtures skip when it is missing)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=10_000)
    return playwright_expect(target)


# -- helpers ---------------------------------------------------------------------------------------
def open_widget(page: Any, server: DemoServer) -> Any:
    page.goto(f"{server.url}/")
    page.get_by_role("button", name="Chat with us").click()
    return page


def customer_says(page: Any, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    bubble = page.locator(".msg--own").filter(has=page.locator(".msg__text", has_text=text)).last
    expect(bubble).to_have_attribute("data-state", re.compile("sent|read"))


def only_conversation(server: DemoServer, token: str) -> dict[str, Any]:
    conversations = server.call(token, "GET", "/api/v1/conversations").json()["conversations"]
    assert len(conversations) == 1, conversations
    conversation: dict[str, Any] = conversations[0]
    return conversation


def assign(server: DemoServer, conversation_id: str, username: str) -> None:
    supervisor = server.login("supervisor")["access_token"]
    user_id = server.login(username)["user"]["id"]
    response = server.call(supervisor, "POST", f"/api/v1/conversations/{conversation_id}/assign", {"user_id": user_id})
    assert response.status_code == 200, response.text


def sign_in(page: Any, server: DemoServer, username: str) -> Any:
    page.goto(f"{server.url}/console")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection")).to_have_text(re.compile("Live"))
    return page


def texts(page: Any, scope: str) -> Any:
    return page.locator(f"{scope} .msg .msg__text")


# -- (a) a customer and a rep talk -----------------------------------------------------------------
def test_customer_and_rep_exchange_messages(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Hello, where is my order #1042?")
    expect(customer.locator(".status")).to_contain_text("Waiting in queue")

    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    assign(demo_server, conversation["id"], "rep")
    expect(customer.locator(".status")).to_have_text("Riley (rep) joined")
    expect(customer.get_by_text("Riley (rep) joined the chat")).to_be_visible()

    rep = sign_in(new_page(), demo_server, "rep")
    rep.locator(f'[data-conversation="{conversation["id"]}"]').click()
    expect(texts(rep, "#transcript")).to_have_text(["Hello, where is my order #1042?"])

    # Typing shows on the other side, and clears when the message arrives.
    rep.get_by_label("Reply", exact=True).fill("Let me check")
    expect(customer.locator(".typing")).to_have_text("Riley (rep) is typing…")
    rep.get_by_label("Reply", exact=True).fill("Let me check that for you.")
    rep.get_by_label("Reply", exact=True).press("Enter")

    expected = ["Hello, where is my order #1042?", "Let me check that for you."]
    expect(texts(customer, ".log")).to_have_text(expected, timeout=5_000)
    expect(texts(rep, "#transcript")).to_have_text(expected)
    expect(customer.locator(".typing")).to_have_text("")
    # The customer has the chat open, so it sends a read receipt; the rep sees it on their message.
    expect(rep.locator(".msg--own .msg__state")).to_have_text("Read")

    screenshot(customer, "widget")
    screenshot(rep, "console")
    assert customer.errors == [] and rep.errors == []


# -- (b) markup in messages is text ----------------------------------------------------------------
def test_markup_in_messages_is_shown_as_text(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    dialogs: list[str] = []
    customer = open_widget(new_page(), demo_server)
    customer.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    hostile = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '<b>bold</b> &amp; "quotes"']
    for text in hostile:
        customer_says(customer, text)

    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    assign(demo_server, conversation["id"], "rep")
    rep = sign_in(new_page(), demo_server, "rep")
    rep.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    rep.locator(f'[data-conversation="{conversation["id"]}"]').click()
    expect(texts(rep, "#transcript")).to_have_text(hostile)
    rep.get_by_label("Reply", exact=True).fill("<img src=y onerror=alert(3)> <svg onload=alert(4)>")
    rep.get_by_label("Reply", exact=True).press("Enter")

    expect(texts(customer, ".log")).to_have_text([*hostile, "<img src=y onerror=alert(3)> <svg onload=alert(4)>"])
    for page in (customer, rep):
        assert page.locator("img").count() == 0
        assert page.locator(".log script, #transcript script, b, svg[onload]").count() == 0
    assert dialogs == []
    assert customer.errors == [] and rep.errors == []


# -- (c) without access_conversation_entries there is no reply box ----------------------------------
def test_trainee_sees_no_reply_box(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    session = httpx.post(f"{demo_server.url}/api/v1/deployments/demo/sessions", json={}, timeout=10).json()
    opened = demo_server.call(
        session["access_token"], "POST", "/api/v1/conversations", {"pre_chat": {"topic": "Refund"}}
    )
    assert opened.status_code == 201, opened.text
    conversation_id = opened.json()["id"]
    assign(demo_server, conversation_id, "trainee")

    trainee = sign_in(new_page(), demo_server, "trainee")
    expect(trainee.locator("#presence-field")).to_be_visible()  # trainees are reps: they set presence
    trainee.locator(f'[data-conversation="{conversation_id}"]').click()
    expect(trainee.locator("#conversation-title")).to_have_text("Refund")
    expect(trainee.get_by_role("alert")).to_have_text("this requires the 'access_conversation_entries' permission")
    expect(trainee.locator("#reply-form")).to_be_hidden()
    expect(trainee.locator("#transfer-form")).to_be_hidden()
    assert trainee.get_by_label("Reply", exact=True).is_visible() is False


# -- (d) a reload resumes the same conversation -----------------------------------------------------
def test_reload_resumes_the_conversation(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "First question")
    customer_says(customer, "Second question")
    supervisor = demo_server.login("supervisor")["access_token"]
    conversation_id = only_conversation(demo_server, supervisor)["id"]
    assign(demo_server, conversation_id, "rep")
    rep = demo_server.login("rep")["access_token"]
    path = f"/api/v1/conversations/{conversation_id}/messages"
    assert demo_server.call(rep, "POST", path, {"id": "r1", "text": "An answer"}).status_code == 201
    expected = ["First question", "Second question", "An answer"]
    expect(texts(customer, ".log")).to_have_text(expected)
    stored_before = customer.evaluate("() => JSON.stringify(sessionStorage)")

    customer.reload()
    expect(texts(customer, ".log")).to_have_text(expected)  # the panel reopens with the history
    expect(customer.locator(".status")).to_have_text("Riley (rep) joined")
    after = json.loads(customer.evaluate("() => JSON.stringify(sessionStorage)"))
    before = json.loads(stored_before)
    [key] = before
    assert json.loads(after[key])["conversationId"] == json.loads(before[key])["conversationId"] == conversation_id
    assert json.loads(after[key])["token"] == json.loads(before[key])["token"]

    # The resumed stream delivers what comes next, once.
    assert demo_server.call(rep, "POST", path, {"id": "r2", "text": "Anything else?"}).status_code == 201
    expect(texts(customer, ".log")).to_have_text([*expected, "Anything else?"])
    customer_says(customer, "No, thanks")
    expect(texts(customer, ".log")).to_have_text([*expected, "Anything else?", "No, thanks"])
    assert customer.errors == []


# -- (e) EventSource in chromium parses the server's stream ----------------------------------------
RAW_EVENT_SOURCE = """
async ({ token, types }) => {
  const headers = { Authorization: `Bearer ${token}` };
  const { ticket } = await (await fetch('/api/v1/stream-tickets', { method: 'POST', headers })).json();
  window.received = [];
  const source = new EventSource(`/api/v1/events?ticket=${encodeURIComponent(ticket)}&last_event_id=0`);
  for (const type of ['stream.open', ...types]) {
    source.addEventListener(type, (e) => {
      window.received.push({ type: e.type, lastEventId: e.lastEventId, data: e.data });
    });
  }
  source.addEventListener('error', () => window.received.push({ type: 'error' }));
  window.source = source;
  await new Promise((resolve) => source.addEventListener('stream.open', resolve, { once: true }));
}
"""

AWKWARD_TEXTS = [
    "plain",
    "two\nlines",
    "carriage\r\nreturn",
    "data: not a field",
    "id: 999999",
    "event: stream.reset",
    ": a comment?",
    "unicode ✓ — 日本語 🚀",
    "\u2028line separator\u0085next line",
    "x" * 5000,
]


def make_traffic(server: DemoServer, texts: list[str], tag: str) -> tuple[str, str]:
    """A customer conversation with ``texts`` in it; returns (customer token, conversation id)."""
    session = httpx.post(f"{server.url}/api/v1/deployments/demo/sessions", json={}, timeout=10).json()
    token = session["access_token"]
    conversation_id = server.call(token, "POST", "/api/v1/conversations", {}).json()["id"]
    send_texts(server, token, conversation_id, texts, tag)
    return token, conversation_id


def send_texts(server: DemoServer, token: str, conversation_id: str, texts: list[str], tag: str) -> None:
    for n, text in enumerate(texts):
        response = server.call(
            token, "POST", f"/api/v1/conversations/{conversation_id}/messages", {"id": f"{tag}-{n}", "text": text}
        )
        assert response.status_code == 201, response.text


def stored_ids(server: DemoServer, token: str) -> list[int]:
    """Every event id the supervisor may see, from the long-poll endpoint (the same log, the same order)."""
    answer = server.call(token, "GET", "/api/v1/events/poll?after=0&timeout=0").json()
    return [event["id"] for event in answer["events"]]


def test_event_source_receives_every_event_in_order(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    page = new_page()
    page.goto(f"{demo_server.url}/console")
    supervisor = demo_server.login("supervisor")["access_token"]
    _, before = make_traffic(demo_server, AWKWARD_TEXTS[:3], "replayed")  # replayed from last_event_id=0
    page.evaluate(RAW_EVENT_SOURCE, {"token": supervisor, "types": EVENT_TYPES})
    make_traffic(demo_server, AWKWARD_TEXTS, "live")  # delivered live

    expected = stored_ids(demo_server, supervisor)
    page.wait_for_function(
        "n => window.received.filter(e => e.lastEventId && e.type !== 'stream.open').length >= n", arg=len(expected)
    )
    received = page.evaluate("() => window.received")
    assert received[0]["type"] == "stream.open"
    assert json.loads(received[0]["data"])["heartbeat_seconds"] == 15.0
    stored = [event for event in received if event["type"] != "stream.open"]
    assert [int(event["lastEventId"]) for event in stored] == expected
    for event in stored:
        data = json.loads(event["data"])
        assert data["id"] == int(event["lastEventId"]) and data["type"] == event["type"]
    messages = [json.loads(event["data"]) for event in stored if event["type"] == "conversation.message"]
    assert [m["text"] for m in messages] == AWKWARD_TEXTS[:3] + AWKWARD_TEXTS
    assert before in {m["conversation_id"] for m in messages}
    page.evaluate("() => window.source.close()")
    assert page.errors == []


# -- stream.js: reconnects with a fresh ticket, falls back to polling ------------------------------
LIVE_EVENTS = """
async ({ token, options }) => {
  const { createApi } = await import('/static/api.js');
  const { LiveEvents } = await import('/static/stream.js');
  window.ids = [];
  window.statuses = [];
  window.live = new LiveEvents({
    api: createApi({ getToken: () => token }),
    lastEventId: 0,
    onEvent: (event) => { if (typeof event.id === 'number') window.ids.push(event.id); },
    onStatus: (status) => window.statuses.push(status),
    ...options,
  });
  window.live.start();
}
"""


def test_stream_module_reconnects_without_loss_or_duplicates(
    demo_server_factory: Callable[..., DemoServer], new_page: Callable[[], Any]
) -> None:
    server = demo_server_factory(stream_lifetime_seconds=1.5)  # every stream ends with stream.reconnect
    page = new_page()
    page.goto(f"{server.url}/console")
    supervisor = server.login("supervisor")["access_token"]
    page.evaluate(LIVE_EVENTS, {"token": supervisor, "options": {}})
    customer, conversation_id = make_traffic(server, ["before"], "a")
    for batch in range(3):
        opened = page.evaluate("() => window.statuses.filter(s => s === 'live').length")
        page.wait_for_function("n => window.statuses.filter(s => s === 'live').length > n", arg=opened)
        send_texts(server, customer, conversation_id, [f"batch {batch} #{n}" for n in range(5)], f"b{batch}")
    expected = stored_ids(server, supervisor)
    page.wait_for_function("n => window.ids.length >= n", arg=len(expected))
    assert page.evaluate("() => window.ids") == expected
    page.evaluate("() => window.live.stop()")
    assert page.errors == []


def test_stream_module_falls_back_to_long_polling(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    page = new_page()
    # A network that breaks event streams: every EventSource request fails.
    page.route(lambda url: "/api/v1/events?" in url, lambda route: route.abort())
    page.goto(f"{demo_server.url}/console")
    supervisor = demo_server.login("supervisor")["access_token"]
    options = {"errorsBeforePolling": 2, "openTimeoutMs": 3000, "pollTimeoutSeconds": 5}
    page.evaluate(LIVE_EVENTS, {"token": supervisor, "options": options})
    page.wait_for_function("() => window.live.status === 'polling'")
    make_traffic(demo_server, ["polled one", "polled two"], "p")
    expected = stored_ids(demo_server, supervisor)
    page.wait_for_function("n => window.ids.length >= n", arg=len(expected))
    assert page.evaluate("() => window.ids") == expected
    page.evaluate("() => window.live.stop()")
