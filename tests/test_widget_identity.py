"""Verified customers in the widget, in Debian's chromium (issue 12): one history on every device.

The company's page vouches for its signed-in customer with a JWT signed by the deployment's identity key
(``data-identity-token`` on the script tag, or ``Helpline.identify(token)``). Two browser contexts are
two devices of one person: they share the conversation, and a rep's reply reaches both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page
from tests.test_web_ui import assign, customer_says, expect, only_conversation, shop_site

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page", "shop_site"]  # fixtures, for pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
COMPANY_KEY = "the-company-signs-its-customers-with-this-key"


def identity_token(subject: str, *, key: str = COMPANY_KEY, **claims: object) -> str:
    return jwt.encode({"sub": subject, "exp": int(time.time()) + 600, **claims}, key, algorithm="HS256")


def members_site(server: DemoServer, shop_site: Callable[[str], str], token: str | None) -> str:
    """The company's site (another origin) with the widget of a deployment that accepts identity tokens,
    and an email question in its pre-chat form that a verified customer's token already answers."""
    attribute = f' data-identity-token="{token}"' if token else ""
    origin = shop_site(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Members</title></head><body>"
        f'<script type="module" src="{server.url}/static/widget.js" data-deployment="members" '
        f'data-server="{server.url}"{attribute}></script></body></html>'
    )
    admin = server.login("admin")["access_token"]
    existing = server.call(admin, "GET", "/api/v1/admin/deployments").json()
    if not any(d["key"] == "members" for d in existing):
        created = server.call(
            admin,
            "POST",
            "/api/v1/admin/deployments",
            {
                "key": "members",
                "queue": "support",
                "allowed_origins": [origin],
                "identity_key": COMPANY_KEY,
                "pre_chat_fields": [{"name": "email", "label": "Your email", "type": "email", "required": True}],
            },
        )
        assert created.status_code == 201, created.text
    return origin


def test_a_verified_customer_has_one_conversation_on_two_devices(
    demo_server: DemoServer, new_page: Callable[[], Any], shop_site: Callable[[str], str]
) -> None:
    server = demo_server
    origin = members_site(server, shop_site, identity_token("member-7", name="Grace", email="grace@example.com"))
    laptop = new_page()
    laptop.goto(f"{origin}/")
    laptop.get_by_role("button", name="Chat with us").click()
    # The token says who she is and gives her email: the form does not ask for it.
    expect(laptop.get_by_label("Message", exact=True)).to_be_visible()
    expect(laptop.get_by_label("Your email (required)", exact=True)).to_have_count(0)
    customer_says(laptop, "Hello from my laptop")
    supervisor = server.login("supervisor")["access_token"]
    conversation = only_conversation(server, supervisor)
    assert conversation["pre_chat"] == {"email": "grace@example.com"}
    assign(server, conversation["id"], "rep")

    phone = new_page()  # another device: its own storage, nothing saved
    phone.goto(f"{origin}/")
    phone.get_by_role("button", name="Chat with us").click()
    expect(phone.locator(".msg--own .msg__text")).to_have_text(["Hello from my laptop"])

    rep = server.login("rep")["access_token"]
    reply = server.call(
        rep, "POST", f"/api/v1/conversations/{conversation['id']}/messages", {"id": "r1", "text": "Hi Grace"}
    )
    assert reply.status_code == 201, reply.text
    for device in (laptop, phone):
        expect(device.locator(".msg--other .msg__text")).to_have_text(["Hi Grace"])
    customer_says(phone, "And this is my phone")
    expect(laptop.locator(".msg--own .msg__text")).to_have_text(["Hello from my laptop", "And this is my phone"])
    assert only_conversation(server, supervisor)["id"] == conversation["id"]  # one person, one conversation
    assert laptop.errors == [] and phone.errors == []


def test_signing_out_of_the_site_forgets_the_chat_and_identify_brings_it_back(
    demo_server: DemoServer, new_page: Callable[[], Any], shop_site: Callable[[str], str]
) -> None:
    server = demo_server
    origin = members_site(server, shop_site, identity_token("member-8", email="alan@example.com"))
    first = new_page()
    first.goto(f"{origin}/")
    first.get_by_role("button", name="Chat with us").click()
    customer_says(first, "Something private")
    first.close()

    members_site(server, shop_site, None)  # the same browser, signed out: the page vouches for nobody
    page = first.context.new_page()
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Chat with us").click()
    expect(page.get_by_label("Your email (required)", exact=True)).to_be_visible()  # a guest, who is asked
    expect(page.locator(".msg__text")).to_have_count(0)

    # The page learns who is signed in later (a single-page app): the chat comes back.
    page.evaluate("token => window.Helpline.identify(token)", identity_token("member-8", email="alan@example.com"))
    expect(page.locator(".msg--own .msg__text")).to_have_text(["Something private"])
    expect(page.get_by_label("Your email (required)", exact=True)).to_be_hidden()


def test_a_token_signed_with_another_key_is_explained_and_starts_no_chat(
    demo_server: DemoServer, new_page: Callable[[], Any], shop_site: Callable[[str], str]
) -> None:
    server = demo_server
    forged = identity_token("member-9", key="not-the-company-key-but-long-enough")
    origin = members_site(server, shop_site, forged)
    page = new_page()
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Chat with us").click()
    page.get_by_label("Message", exact=True).fill("hello?")
    page.get_by_label("Message", exact=True).press("Enter")
    notice = page.locator(".notice")
    expect(notice).to_contain_text("We could not confirm that you are signed in")
    expect(notice).not_to_contain_text("identity token")  # said for people, not developers
    supervisor = server.login("supervisor")["access_token"]
    assert server.call(supervisor, "GET", "/api/v1/conversations").json()["conversations"] == []
