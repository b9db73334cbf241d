"""Bots and integrations in the browser (issue 14): the widget's "Talk to a person", the admin page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser import DEMO_PASSWORD, DemoServer, browser, demo_server, demo_server_factory, new_page
from tests.test_web_ui import customer_says, expect, only_conversation, open_widget, sign_in

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


def test_admins_manage_webhooks_keys_and_bots_in_the_console(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    page = sign_in(new_page(), demo_server, "admin")
    page.goto(f"{demo_server.url}/console/integrations")
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()

    page.get_by_label("Endpoint URL").fill("https://crm.example/helpline")
    page.get_by_role("button", name="Add webhook").click()
    secret = page.get_by_label("Signing secret of https://crm.example/helpline", exact=True)
    expect(secret).to_have_value(re.compile(r"^whsec_"))
    row = page.locator("tr[data-webhook]")
    expect(row).to_contain_text("Enabled")

    admin = demo_server.login("admin")["access_token"]
    (hook,) = demo_server.call(admin, "GET", "/api/v1/admin/webhooks").json()
    assert demo_server.call(admin, "PATCH", f"/api/v1/admin/webhooks/{hook['id']}", {"paused": True}).status_code == 200
    page.reload()
    banner = page.get_by_role("alert").filter(has_text="is paused")
    expect(banner).to_contain_text("https://crm.example/helpline")
    banner.get_by_role("button", name="Resume webhook https://crm.example/helpline").click()
    expect(banner).to_be_hidden()
    expect(row).to_contain_text("Enabled")

    page.get_by_label("Key name").fill("crm-export")
    page.locator("[data-permission=supervisor]").check()
    page.locator("[data-permission=chat_user]").check()
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("API key crm-export", exact=True)
    expect(key).to_have_value(re.compile(r"^hlk_"))
    token = key.input_value()
    assert demo_server.call(token, "GET", "/api/v1/conversations").status_code == 200
    page.get_by_role("button", name="Revoke API key crm-export").click()
    expect(page.locator("tr[data-key=crm-export]")).to_contain_text("Revoked")
    assert demo_server.call(token, "GET", "/api/v1/conversations").status_code == 401

    picker = page.get_by_label("Bot in front of support")
    picker.select_option(label="rep")
    page.get_by_role("button", name="Save the bot of support").click()
    rep_id = demo_server.login("rep")["user"]["id"]
    expect(page.get_by_label("Bot in front of support")).to_have_value(rep_id)
    queues = demo_server.call(admin, "GET", "/api/v1/admin/queues").json()
    assert [q["bot_user_id"] for q in queues if q["name"] == "support"] == [rep_id]
    assert page.errors == []
