"""The widget's "Talk to a person" while a bot has the conversation (issue 14), in Debian's chromium."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser import DEMO_PASSWORD, DemoServer, browser, demo_server, demo_server_factory, new_page
from tests.test_web_ui import customer_says, expect, only_conversation, open_widget

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_the_customer_asks_for_a_person_while_the_bot_has_the_chat(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    admin = demo_server.login("admin")["access_token"]
    bot = demo_server.call(
        admin,
        "POST",
        "/api/v1/admin/users",
        {"username": "faqbot", "password": DEMO_PASSWORD, "permissions": ["chat_user", "access_conversation_entries"]},
    )
    assert bot.status_code == 201, bot.text
    (support,) = [q for q in demo_server.call(admin, "GET", "/api/v1/admin/queues").json() if q["name"] == "support"]
    fronted = demo_server.call(admin, "PUT", f"/api/v1/admin/queues/{support['id']}/bot", {"user_id": bot.json()["id"]})
    assert fronted.status_code == 200 and fronted.json()["bot_user_id"] == bot.json()["id"]

    page = open_widget(new_page(), demo_server)
    person = page.get_by_role("button", name="Talk to a person")
    expect(person).to_be_hidden()
    customer_says(page, "Hello, is anyone there?")
    expect(person).to_be_visible()  # the bot has the conversation
    person.click()
    expect(page.locator(".status")).to_have_text("Connecting you with a person")
    expect(page.locator(".sys--notice", has_text="Connecting you with a person")).to_be_visible()
    expect(person).to_be_hidden()

    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    assert conversation["status"] == "queued" and conversation["escalated_at"] is not None
    entries = demo_server.call(supervisor, "GET", f"/api/v1/conversations/{conversation['id']}/entries").json()
    notes = [e for e in entries["entries"] if e["type"] == "conversation.note"]
    assert len(notes) == 1 and notes[0]["escalation"] is True
    assert page.errors == []
