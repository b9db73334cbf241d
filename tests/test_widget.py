"""The customer's widget in Debian's chromium (issue 12): silent stalls, tabs, pre-chat, long chats.

Each test runs a demo server on a real socket and drives one browser context per customer. Conditions
are awaited with Playwright's waits (never a fixed sleep, except the quiet spells a firewall test is
about), and every test has a timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page
from tests.conftest import free_port
from tests.proxies import silent_firewall
from tests.test_web_ui import assign, customer_says, expect, only_conversation

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, re-exported for pytest

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
