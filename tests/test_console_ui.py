"""The console a contact center runs on (issue 11), in Debian's chromium: offers that survive a reload,
trainees who are never handed work, pickers instead of ids, canned responses, internal notes the
customer never gets, the wallboard, and the admin pages.

Set HELPLINE_SCREENSHOTS=docs/screenshots to refresh the README's pictures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot
from tests.test_web_ui import customer_says, expect, open_widget, sign_in, texts

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, imported for pytest
pytestmark = pytest.mark.timeout(120)


def customer_token(page: Any) -> str:
    """The widget's access token, from its storage (to read what the server sends the customer)."""
    stored = page.evaluate("() => [...Object.values(localStorage), ...Object.values(sessionStorage)]")
    for value in stored:
        state = json.loads(value)
        if isinstance(state, dict) and state.get("token"):
            token: str = state["token"]
            return token
    raise AssertionError(f"no widget session in {stored}")


def add_rep(server: DemoServer, username: str, display_name: str) -> str:
    admin = server.login("admin")["access_token"]
    queues = server.call(admin, "GET", "/api/v1/admin/queues").json()
    created = server.call(
        admin,
        "POST",
        "/api/v1/admin/users",
        {
            "username": username,
            "display_name": display_name,
            "password": "demo-password-123",
            "permissions": ["chat_user", "chat_rep", "access_conversation_entries"],
            "queue_ids": [queues[0]["id"]],
        },
    )
    assert created.status_code == 201, created.text
    user_id: str = created.json()["id"]
    return user_id


def test_rep_reloads_with_a_pending_offer_accepts_it_replies_canned_and_whispers(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    supervisor = demo_server.login("supervisor")["access_token"]
    made = demo_server.call(
        supervisor,
        "POST",
        "/api/v1/canned-responses",
        {"shortcut": "thanks", "title": "Thank you", "text": "Thanks for waiting, {customer.name}! I am {rep.name}."},
    )
    assert made.status_code == 201, made.text
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "My parcel never came")

    rep = sign_in(new_page(), demo_server, "rep")
    rep.get_by_label("Status").select_option("online")
    offer = rep.locator(".offer")
    expect(offer).to_contain_text("“My parcel never came”")
    expect(offer.locator(".offer__left")).to_have_text(re.compile(r"^\d+ s left$"))
    expect(rep).to_have_title(re.compile(r"^\(1\) New chat"))
    # A reload loses nothing: the offer and the presence are fetched from the server again.
    rep.reload()
    expect(rep.locator("#connection")).to_have_text(re.compile("Live"))
    expect(rep.get_by_label("Status")).to_have_value("online")
    expect(rep.locator(".offer")).to_contain_text("“My parcel never came”")
    name = rep.locator(".offer__who strong").inner_text()
    rep.keyboard.press("Alt+a")  # accept from the keyboard
    expect(rep.locator(".offer")).to_have_count(0)
    expect(rep.locator("#conversation-title")).to_have_text(name)
    expect(texts(rep, "#transcript")).to_have_text(["My parcel never came"])
    expect(rep.locator("#conversation-meta")).to_contain_text("assigned to you")
    expect(rep.locator("#customer-card")).to_have_text(f"{name} guest")  # names, never ids (nor "null")

    # A canned response, found with "/" and filled in with the customer's and the rep's names.
    reply = rep.get_by_label("Reply", exact=True)
    reply.fill("/tha")
    expect(rep.locator("#canned-suggestions")).to_contain_text("/thanks")
    reply.press("Enter")
    expect(reply).to_have_value(f"Thanks for waiting, {name}! I am Riley (rep).")
    reply.press("Enter")
    expect(texts(customer, ".log").last).to_have_text(f"Thanks for waiting, {name}! I am Riley (rep).")

    # An internal note: shown to staff, set apart; the customer's widget never has it.
    rep.get_by_label("Internal note", exact=True).check()
    reply.fill("Whisper: refund approved by Sam")
    reply.press("Enter")
    expect(rep.locator(".note-entry")).to_contain_text("Whisper: refund approved by Sam")
    rep.get_by_label("Internal note", exact=True).uncheck()
    reply.fill("Your refund is on its way.")
    reply.press("Enter")
    expect(texts(customer, ".log").last).to_have_text("Your refund is on its way.")
    assert "Whisper" not in customer.locator("body").inner_text()
    # ... nor on the wire: not in the customer's poll (the log its stream replays), nor its entries page.
    token = customer_token(customer)
    headers = {"Authorization": f"Bearer {token}"}
    polled = httpx.get(f"{demo_server.url}/api/v1/events/poll?after=0&timeout=0", headers=headers, timeout=10)
    assert polled.status_code == 200 and "Whisper" not in polled.text and "conversation.note" not in polled.text
    conversation = polled.json()["events"][-1]["conversation_id"]
    entries = httpx.get(f"{demo_server.url}/api/v1/conversations/{conversation}/entries", headers=headers, timeout=10)
    assert entries.status_code == 200 and "Whisper" not in entries.text
    screenshot(rep, "console")
    assert rep.errors == [] and customer.errors == []


def test_a_trainee_gets_no_work_and_a_transfer_goes_through_the_picker(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    rep2 = add_rep(demo_server, "morgan", "Morgan")
    trainee = sign_in(new_page(), demo_server, "trainee")
    expect(trainee.locator("#no-work")).to_contain_text("an admin must grant Access Conversation Entries")
    trainee.get_by_label("Status").select_option("online")
    rep = sign_in(new_page(), demo_server, "rep")
    rep.get_by_label("Status").select_option("online")

    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Hello, anyone?")
    expect(rep.locator(".offer")).to_have_count(1, timeout=15_000)
    expect(trainee.locator(".offer")).to_have_count(0)  # online, yet never offered: it cannot answer
    rep.get_by_role("button", name=re.compile("^Accept chat with")).click()
    expect(texts(rep, "#transcript")).to_have_text(["Hello, anyone?"])
    morgan = demo_server.login("morgan")["access_token"]
    assert demo_server.call(morgan, "PUT", "/api/v1/me/presence", {"status": "online"}).status_code == 200
    rep.reload()  # the pickers are read when the conversation opens
    rep.locator("#conversation-list .conv").first.click()

    picker = rep.get_by_label("Transfer to")
    expect(picker.locator("option", has_text="Morgan")).to_have_count(1)
    assert picker.locator("option", has_text="Taylor").count() == 0  # the trainee is never a target
    picker.select_option(value=f"user:{rep2}")
    rep.get_by_role("button", name="Transfer").click()
    expect(customer.get_by_text("Morgan joined the chat")).to_be_visible()
    expect(rep.locator("#conversation-list .conv")).to_have_count(0)
    assert trainee.locator(".offer").count() == 0
    assert rep.errors == [] and trainee.errors == [] and customer.errors == []


def test_the_wallboard_counts_a_scripted_queue_of_five_customers_and_two_reps(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    rep2 = add_rep(demo_server, "morgan", "Morgan")
    rep = demo_server.login("rep")
    supervisor = demo_server.login("supervisor")["access_token"]
    conversations = []
    for n in range(5):
        session = httpx.post(
            f"{demo_server.url}/api/v1/deployments/demo/sessions", json={"display_name": f"Customer {n}"}, timeout=10
        ).json()
        opened = httpx.post(
            f"{demo_server.url}/api/v1/conversations",
            json={},
            headers={"Authorization": f"Bearer {session['access_token']}"},
            timeout=10,
        )
        conversations.append(opened.json()["id"])
    for conversation, user_id in ((conversations[0], rep["user"]["id"]), (conversations[1], rep2)):
        assigned = demo_server.call(
            supervisor, "POST", f"/api/v1/conversations/{conversation}/assign", {"user_id": user_id}
        )
        assert assigned.status_code == 200, assigned.text
    assert demo_server.call(rep["access_token"], "PUT", "/api/v1/me/presence", {"status": "busy"}).status_code == 200

    board = sign_in(new_page(), demo_server, "supervisor")
    board.get_by_role("button", name="Wallboard").click()
    support = board.locator('#wallboard-queues tr[data-queue="support"]')
    expect(support.locator('[data-field="waiting"]')).to_have_text("3")  # right after sign-in, not after a change
    expect(support.locator('[data-field="assigned"]')).to_have_text("2")
    expect(support.locator('[data-field="longest"]')).not_to_have_text("—")
    riley = board.locator('#wallboard-reps tr[data-rep="Riley (rep)"]')
    expect(riley).to_contain_text("Busy")
    expect(riley.locator('[data-field="load"]')).to_have_text("1/3")
    expect(riley).to_contain_text("Customer 0")
    expect(board.locator('#wallboard-reps tr[data-rep="Morgan"] [data-field="load"]')).to_have_text("1/3")
    # Live: one more assignment moves the figures without a reload.
    demo_server.call(supervisor, "POST", f"/api/v1/conversations/{conversations[2]}/assign", {"user_id": rep2})
    expect(support.locator('[data-field="waiting"]')).to_have_text("2")
    expect(support.locator('[data-field="assigned"]')).to_have_text("3")
    expect(board.locator(".offer")).to_have_count(0)  # supervisors without chat_rep never see offers
    # Monitor from the board: read-only, with the reassign picker.
    riley.get_by_role("button", name="Monitor the chat with Customer 0").click()
    expect(board.get_by_text("You are monitoring this conversation read-only.")).to_be_visible()
    expect(board.get_by_label("Assign to").locator("option", has_text="Morgan")).to_have_count(1)
    expect(board.locator("#reply-form")).to_be_hidden()
    board.get_by_label("Whisper to the rep").fill("Customer 0 is a VIP")
    board.get_by_role("button", name="Add note").click()
    expect(board.locator(".note-entry")).to_contain_text("Customer 0 is a VIP")
    board.get_by_role("button", name="Wallboard").click()
    screenshot(board, "wallboard")
    assert board.errors == []


def test_an_admin_adds_an_allowed_origin_and_the_widget_works_from_it(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    port = urlsplit(demo_server.url).port
    other = f"http://localhost:{port}"  # the same server under another name: another origin
    refused = httpx.post(
        f"{demo_server.url}/api/v1/deployments/demo/sessions", json={}, headers={"Origin": other}, timeout=10
    )
    assert refused.status_code == 403

    admin = sign_in(new_page(), demo_server, "admin")
    admin.get_by_role("button", name="Admin").click()
    origins = admin.get_by_label("Allowed origins of demo (one per line)")
    expect(origins).to_have_value(re.compile(re.escape(demo_server.url)))
    origins.fill(f"{demo_server.url}\n{other}")
    admin.get_by_role("button", name="Save deployment demo").click()
    expect(admin.get_by_label("Allowed origins of demo (one per line)")).to_have_value(f"{demo_server.url}\n{other}")
    expect(admin.locator('[data-deployment="demo"] .snippet')).to_contain_text('data-deployment="demo"')
    # Queues by name with their wrap-up codes, users by name with their permissions.
    admin.get_by_label("Wrap-up dispositions of support (comma separated)").fill("Resolved, Refund")
    admin.get_by_role("button", name="Save queue support").click()
    expect(admin.get_by_label("Wrap-up dispositions of support (comma separated)")).to_have_value("Resolved, Refund")
    expect(admin.locator('tr[data-user="trainee"]')).to_contain_text("Taylor (trainee)")
    screenshot(admin, "admin")

    customer = new_page()
    customer.goto(f"{other}/")
    customer.get_by_role("button", name="Chat with us").click()
    customer_says(customer, "Hello from the other site")
    assert admin.errors == [] and customer.errors == []
