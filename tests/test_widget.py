"""The customer's widget in Debian's chromium (issue 12): silent stalls, tabs, pre-chat, long chats.

Each test runs a demo server on a real socket and drives one browser context per customer. Conditions
are awaited with Playwright's waits (never a fixed sleep, except the quiet spells a firewall test is
about), and every test has a timeout.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot
from tests.conftest import free_port
from tests.proxies import silent_firewall
from tests.test_web_ui import assign, customer_says, expect, only_conversation, shop_site

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page", "shop_site"]  # fixtures, for pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def rep_says(server: DemoServer, rep_token: str, conversation_id: str, text: str, message_id: str) -> float:
    """The rep replies through the API (directly, not through any proxy); returns when it was stored."""
    response = server.call(
        rep_token, "POST", f"/api/v1/conversations/{conversation_id}/messages", {"id": message_id, "text": text}
    )
    assert response.status_code == 201, response.text
    return time.monotonic()


def started_chat(page: Any, server: DemoServer, url: str, first: str) -> tuple[str, str]:
    """Open the widget at `url`, say `first`, get the conversation assigned to rep; (rep token, id)."""
    page.goto(f"{url}/")
    page.get_by_role("button", name="Chat with us").click()
    customer_says(page, first)
    supervisor = server.login("supervisor")["access_token"]
    conversation_id = only_conversation(server, supervisor)["id"]
    assign(server, conversation_id, "rep")
    return server.login("rep")["access_token"], conversation_id


# -- a firewall that silently drops flows idle for 10 s -----------------------------------------------
@pytest.mark.timeout(150)
def test_widget_gets_every_reply_within_10_s_behind_a_silent_firewall(
    demo_server_factory: Callable[..., DemoServer], new_page: Callable[[], Any]
) -> None:
    port = free_port()
    # At the shipped defaults; the page (and so the widget's API origin) is served through the firewall.
    server = demo_server_factory(public_url=f"http://127.0.0.1:{port}")
    with silent_firewall(server.url, port=port, idle_seconds=10.0) as firewall:
        page = new_page()
        rep, conversation_id = started_chat(page, server, firewall.url, "Hello from behind a firewall")
        replies = page.locator(".msg--other .msg__text")
        # Quiet spells longer than the firewall's 10 s between bursts: 20 replies in all.
        schedule = [11.0] + [0.3] * 6 + [12.0] + [0.3] * 6 + [11.0] + [0.3] * 5
        late = []
        for number, pause in enumerate(schedule):
            time.sleep(pause)  # the quiet spell is the scenario itself
            text = f"reply number {number}"
            acked = rep_says(server, rep, conversation_id, text, f"fw-{number}")
            replies.nth(number).wait_for(state="attached", timeout=20_000)
            arrived = time.monotonic() - acked
            expect(replies.nth(number)).to_have_text(text)  # in order, none skipped or repeated
            if arrived > 10.0:
                late.append((number, round(arrived, 1)))
        assert late == [], f"late replies (number, seconds): {late}; firewall dropped {firewall.dropped} flows"
        expect(replies).to_have_count(len(schedule))
        assert page.errors == []


# -- one customer, one conversation, one stream, across tabs ------------------------------------------
def open_sse_streams(server: DemoServer) -> int:
    """The server's own count of open event streams (its Prometheus gauge)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(r'^helpline_open_streams\{transport="sse"\} (\S+)$', text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def wait_for_streams(server: DemoServer, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (now := open_sse_streams(server)) != count:
        assert time.monotonic() < deadline, f"{now} open streams, expected {count}"
        time.sleep(0.1)


def test_two_tabs_share_one_conversation_and_one_stream_and_survive_closing_the_leader(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    server = demo_server
    first = new_page()
    rep, conversation_id = started_chat(first, server, server.url, "Hello from the first tab")
    expect(first.locator("#helpline-chat")).to_have_attribute("data-stream-role", "leader")

    # A second tab of the same browser: the same conversation, and no second stream.
    second = first.context.new_page()
    second.errors = []
    second.on("pageerror", lambda error: second.errors.append(str(error)))
    second.goto(f"{server.url}/")
    expect(second.locator("#helpline-chat")).to_have_attribute("data-stream-role", "follower")
    second.get_by_role("button", name="Chat with us").click()
    expect(second.locator(".msg--own .msg__text")).to_have_text(["Hello from the first tab"])
    wait_for_streams(server, 1)

    rep_says(server, rep, conversation_id, "A reply both tabs see", "tabs-0")
    for page in (first, second):
        expect(page.locator(".msg--other .msg__text")).to_have_text(["A reply both tabs see"])
    customer_says(second, "And this is the second tab")
    expect(first.locator(".msg--own .msg__text")).to_have_text(
        ["Hello from the first tab", "And this is the second tab"]
    )
    supervisor = server.login("supervisor")["access_token"]
    assert only_conversation(server, supervisor)["id"] == conversation_id  # one customer, one conversation
    wait_for_streams(server, 1)

    # The leader closes; replies keep coming, during the takeover too: each shows once, in order.
    first.close()
    expected = ["A reply both tabs see"]
    for number in range(6):
        text = f"after the leader closed {number}"
        rep_says(server, rep, conversation_id, text, f"tabs-{number + 1}")
        expected.append(text)
    expect(second.locator("#helpline-chat")).to_have_attribute("data-stream-role", "leader")
    expect(second.locator(".msg--other .msg__text")).to_have_text(expected)
    wait_for_streams(server, 1)
    rep_says(server, rep, conversation_id, "and one more", "tabs-last")
    expect(second.locator(".msg--other .msg__text")).to_have_text([*expected, "and one more"])
    assert second.errors == []


# -- the pre-chat form -----------------------------------------------------------------------------
def test_pre_chat_answers_reach_the_conversation(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    page = new_page()
    page.goto(f"{demo_server.url}/")
    page.get_by_role("button", name="Chat with us").click()
    expect(page.get_by_role("group", name="Before we start")).to_be_visible()
    page.get_by_label("What can we help with?").fill("Billing")
    screenshot(page, "widget-prechat")
    email = page.get_by_label("Email (for a reply if we miss you)")
    email.fill("not an address")
    box = page.get_by_label("Message", exact=True)
    box.fill("I was charged twice")
    box.press("Enter")
    # Refused here, as the server would: the message waits, the problem is said and focused.
    expect(page.locator(".prechat__error:not([hidden])")).to_have_text(
        ["Please enter an email address, like name@example.com."]
    )
    expect(email).to_be_focused()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(box).to_have_value("I was charged twice")
    assert page.locator(".msg--own").count() == 0

    email.fill("ada@example.com")
    customer_says(page, "I was charged twice")
    expect(page.get_by_role("group", name="Before we start")).to_be_hidden()  # asked once, per chat
    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    seen = demo_server.call(supervisor, "GET", f"/api/v1/conversations/{conversation['id']}").json()
    assert seen["pre_chat"] == {"topic": "Billing", "email": "ada@example.com"}
    assert page.errors == []


# -- a long chat follows the newest message; a reader who scrolled up gets a hint -------------------------
def in_view(page: Any, text: str) -> bool:
    """Whether the message bubble with `text` lies wholly inside the transcript's visible area."""
    return bool(
        page.locator(".log").evaluate(
            """(log, text) => {
                const bubble = [...log.querySelectorAll('.msg')].find(m => m.textContent.includes(text));
                if (!bubble) return false;
                const box = log.getBoundingClientRect(), b = bubble.getBoundingClientRect();
                return b.top >= box.top - 1 && b.bottom <= box.bottom + 1;
            }""",
            text,
        )
    )


def test_the_20th_reply_is_visible_without_scrolling(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    page = new_page()
    rep, conversation_id = started_chat(page, demo_server, demo_server.url, "A long chat, please")
    for number in range(1, 21):
        text = f"Reply {number}: " + "a longer line of text that wraps onto several lines in the panel " * 2
        rep_says(demo_server, rep, conversation_id, text, f"long-{number}")
        expect(page.locator(".msg--other .msg__text").nth(number - 1)).to_have_text(text.strip())
        assert in_view(page, f"Reply {number}:"), f"reply {number} is below the fold"
    expect(page.locator(".new-messages")).to_be_hidden()
    screenshot(page, "widget-long-chat")

    # Scrolled up to reread: a new reply does not yank the view, a hint says it is there.
    page.locator(".log").evaluate("log => { log.scrollTop = 0; }")
    rep_says(demo_server, rep, conversation_id, "Reply 21: while you were reading", "long-21")
    expect(page.locator(".new-messages")).to_be_visible()
    assert not in_view(page, "Reply 21:")
    page.get_by_role("button", name="New messages ↓").click()
    assert in_view(page, "Reply 21:")
    expect(page.locator(".new-messages")).to_be_hidden()
    assert page.errors == []


# -- a phone --------------------------------------------------------------------------------------
def test_on_a_phone_the_open_chat_is_full_screen(demo_server: DemoServer, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{demo_server.url}/")
        page.get_by_role("button", name="Chat with us").click()
        panel = page.get_by_role("dialog", name="Customer support")
        expect(panel).to_be_visible()
        # Measured once its opening animation (8 px of rise) has finished, not in the middle of it.
        panel.evaluate("el => Promise.all(el.getAnimations().map((a) => a.finished)).then(() => true)")
        box = panel.bounding_box()
        assert box is not None
        assert box["x"] <= 1 and box["y"] <= 1 and box["width"] >= 389 and box["height"] >= 843, box
        customer_says(page, "Hello from my phone")
        screenshot(page, "widget-phone")
        page.get_by_role("button", name="Minimize chat").click()
        expect(page.get_by_role("button", name="Chat with us")).to_be_visible()
        launcher = page.get_by_role("button", name="Chat with us").bounding_box()
        assert launcher is not None and launcher["width"] < 390  # closed, the page is the page again
    finally:
        context.close()


# -- problems in words ----------------------------------------------------------------------------------
def test_the_message_limit_is_counted_live_and_never_cut(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    page = new_page()
    page.goto(f"{demo_server.url}/")
    page.get_by_role("button", name="Chat with us").click()
    box = page.get_by_label("Message", exact=True)
    counter = page.locator(".counter")
    box.fill("a" * 8000)
    expect(counter).to_have_text("")  # quiet far from the limit
    box.fill("a" * 9500)
    expect(counter).to_have_text(re.compile(r"9.500 of 10.000 characters"))
    box.fill("a" * 10050)  # a paste over the limit is kept whole, and said to be too long
    expect(counter).to_have_text("Too long by 50 characters: shorten it to send.")
    expect(box).to_have_attribute("aria-invalid", "true")
    box.press("Enter")
    assert page.locator(".msg--own").count() == 0
    assert len(box.input_value()) == 10050
    box.fill("a" * 10000)
    box.press("Enter")
    expect(page.locator(".msg--own")).to_have_attribute("data-state", re.compile("sent|read"))
    expect(counter).to_have_text("")
    assert page.errors == []


def test_a_disallowed_origin_is_explained(
    demo_server: DemoServer, new_page: Callable[[], Any], shop_site: Callable[[str], str]
) -> None:
    origin = shop_site(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Shop</title></head><body>"
        f'<script type="module" src="{demo_server.url}/static/widget.js" data-deployment="demo" '
        f'data-server="{demo_server.url}"></script></body></html>'
    )
    page = new_page()
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Chat with us").click()
    notice = page.locator(".notice")
    expect(notice).to_contain_text(f"Chat is not switched on for this website ({origin})")
    expect(notice).not_to_contain_text("try again")


# -- the connection's state in words -------------------------------------------------------------------
def is_event_stream(url: str) -> bool:
    """The EventSource's URL (`/api/v1/events?ticket=…`), not the long-poll (`/api/v1/events/poll`)."""
    return "/api/v1/events?" in url


def test_the_connection_state_is_said_in_words_and_gone_once_healthy(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    page = new_page()
    # The event stream cannot get through (as behind a proxy that refuses it): the widget long-polls.
    page.route(is_event_stream, lambda route: route.abort())
    rep, conversation_id = started_chat(page, demo_server, demo_server.url, "Hello from a poor network")
    notice = page.get_by_role("status").filter(has_text="Connection")
    expect(notice).to_have_text("Connection is slow — still delivering", timeout=30_000)
    expect(notice).to_have_attribute("aria-live", "polite")
    rep_says(demo_server, rep, conversation_id, "still here while polling", "cs-1")
    expect(page.locator(".msg--other .msg__text")).to_have_text(["still here while polling"], timeout=30_000)

    # The network goes away: said so, in place of the slow-connection line.
    page.context.set_offline(True)
    offline = page.get_by_role("status").filter(has_text="Offline")
    expect(offline).to_have_text(re.compile("^Offline — "))
    expect(page.locator(".connection-line")).to_have_count(1)  # one line, its text replaced

    # Back online with the stream unblocked: the widget returns to SSE and the line is gone.
    page.unroute(is_event_stream)
    page.context.set_offline(False)
    expect(page.locator(".connection[data-state='live']")).to_be_attached(timeout=30_000)
    expect(page.locator(".connection-line")).to_be_hidden()
    expect(page.locator(".connection-line")).to_have_text("")
    rep_says(demo_server, rep, conversation_id, "and live again", "cs-2")
    expect(page.locator(".msg--other .msg__text")).to_have_text(["still here while polling", "and live again"])
    assert page.errors == []


# -- the guest's session is renewed by use ----------------------------------------------------------------
def test_a_returning_guest_with_an_expired_token_keeps_the_conversation(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    page = new_page()
    rep, conversation_id = started_chat(page, demo_server, demo_server.url, "Hello before the weekend")
    key, before = page.evaluate("() => Object.entries(localStorage).find(([k]) => k.startsWith('helpline:'))")
    stored = json.loads(before)
    assert stored["sessionUntil"] > stored["expiresAt"]  # the session outlives its token
    # Come back after the token's expiry (as the page sees it): the widget renews instead of starting anew.
    stored["expiresAt"] = int(time.time() * 1000) - 1000
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, json.dumps(stored)])
    page.reload()
    expect(page.locator(".msg--own .msg__text")).to_have_text(["Hello before the weekend"])
    renewed = json.loads(page.evaluate("(k) => localStorage.getItem(k)", key))
    assert renewed["customerId"] == stored["customerId"] and renewed["conversationId"] == conversation_id
    assert renewed["token"] != stored["token"] and renewed["expiresAt"] > time.time() * 1000
    rep_says(demo_server, rep, conversation_id, "Welcome back", "rn-1")
    expect(page.locator(".msg--other .msg__text")).to_have_text(["Welcome back"])
    assert page.errors == []
