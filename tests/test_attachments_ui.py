"""Attachments, ratings and follow-ups in the browser (issue 12): Debian's chromium through Playwright.

An image the customer drops into the widget shows as a thumbnail to the rep; a PDF the rep sends
downloads in the widget; a file that is not what its name says is refused in plain words; after the
chat ends the customer rates it and the rep and the supervisor see the rating.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot
from tests.files import pdf, png
from tests.test_web_ui import assign, customer_says, expect, only_conversation, open_widget, sign_in

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def drop_file(page: Any, selector: str, name: str, content_type: str, content: bytes) -> None:
    """Drop a file on an element, as dragging it from the desktop does."""
    transfer = page.evaluate_handle(
        """([name, type, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            return transfer;
        }""",
        [name, content_type, base64.b64encode(content).decode()],
    )
    page.locator(selector).dispatch_event("dragover", {"dataTransfer": transfer})
    page.locator(selector).dispatch_event("drop", {"dataTransfer": transfer})


def loaded(image: Any) -> bool:
    return bool(image.evaluate("(img) => img.complete && img.naturalWidth > 0"))


def test_an_image_reaches_the_rep_as_a_thumbnail_and_a_pdf_downloads_in_the_widget(
    demo_server: DemoServer, new_page: Callable[[], Any], tmp_path: Path
) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "The bag arrived torn, see the photo")
    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    assign(demo_server, conversation["id"], "rep")

    # Dropped on the chat panel: it uploads at once, then goes with the next message (no text needed).
    photo = png(640, 400)
    drop_file(customer, ".panel", "torn-bag.png", "image/png", photo)
    expect(customer.locator(".chip[data-state=ready]")).to_contain_text("torn-bag.png")
    customer.get_by_label("Message", exact=True).press("Enter")
    own = customer.locator(".msg--own").last
    expect(own).to_have_attribute("data-state", re.compile("sent|read"))
    expect(own.locator("img.thumb")).to_have_attribute("alt", "torn-bag.png")
    customer.wait_for_function(  # the widget shows the server's thumbnail too, not the 640 px file
        "(img) => img.complete && img.naturalWidth === 320", arg=own.locator("img.thumb").element_handle()
    )

    rep = sign_in(new_page(), demo_server, "rep")
    rep.locator(f'[data-conversation="{conversation["id"]}"]').click()
    thumbnail = rep.locator("#transcript img.thumb")
    expect(thumbnail).to_have_attribute("src", re.compile("^blob:"))
    # The server's thumbnail (320 px on the long side), not the 640 px file; the file opens on a click.
    rep.wait_for_function("(img) => img.complete && img.naturalWidth === 320", arg=thumbnail.element_handle())
    assert loaded(thumbnail)
    with rep.expect_popup() as opened:
        thumbnail.click()
    full = opened.value
    full.wait_for_function("() => document.images.length === 1 && document.images[0].naturalWidth === 640")
    full.close()

    # A file that is not what its name says is refused, in words a person understands.
    customer.locator("input[type=file]").set_input_files(
        files=[{"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": png()}]
    )
    expect(customer.locator(".chip[data-state=failed]")).to_contain_text("does not look like what its name says")
    customer.locator(".chip[data-state=failed] .chip__remove").click()

    # The rep answers with a PDF from the file picker; the customer downloads it.
    invoice = pdf("Refund 42")
    rep.locator("#reply-form input[type=file]").set_input_files(
        files=[{"name": "refund.pdf", "mimeType": "application/pdf", "buffer": invoice}]
    )
    expect(rep.locator(".chip[data-state=ready]")).to_contain_text("refund.pdf")
    rep.get_by_label("Reply", exact=True).fill("Here is your refund note.")
    rep.get_by_label("Reply", exact=True).press("Enter")
    button = customer.locator(".msg--other button.file")
    expect(button).to_contain_text("refund.pdf")
    with customer.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == "refund.pdf"
    saved = tmp_path / "refund.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes() == invoice

    screenshot(customer, "widget-attachments")
    screenshot(rep, "console-attachments")
    assert customer.errors == [] and rep.errors == []


def test_after_the_chat_the_customer_rates_it_and_staff_see_the_rating(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Thanks for the help earlier")
    supervisor_token = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor_token)
    assign(demo_server, conversation["id"], "rep")
    supervisor = sign_in(new_page(), demo_server, "supervisor")
    rep = sign_in(new_page(), demo_server, "rep")
    rep.locator(f'[data-conversation="{conversation["id"]}"]').click()
    expect(rep.locator("#transcript .msg__text")).to_have_text(["Thanks for the help earlier"])

    customer.get_by_role("button", name="End chat").click()
    customer.get_by_label("4: Good").check()
    customer.get_by_label("Anything to add? (optional)").fill("Quick and friendly")
    customer.get_by_role("button", name="Send rating").click()
    expect(customer.get_by_text("Thank you for your rating!")).to_be_visible()
    # The transcript offer is there too (this demo server sends no email, and says so plainly).
    customer.get_by_label("Email me a copy of this chat").fill("me@example.com")
    customer.get_by_role("button", name="Send transcript").click()
    expect(customer.locator(".followup.email [role=status]")).to_have_text("Email is not available here.")

    # The rep had the conversation open: the rating arrives live.
    expect(rep.locator("#transcript")).to_contain_text("rated this chat 4 of 5: “Quick and friendly”")
    # The supervisor's queue line carries the average.
    expect(supervisor.locator("#queue-stats")).to_contain_text("rating 4 of 5 (1)", timeout=15_000)
    screenshot(customer, "widget-rating")
    assert customer.errors == [] and rep.errors == [] and supervisor.errors == []


def test_with_no_one_online_the_customer_leaves_an_email_and_the_reply_goes_there(
    demo_server_factory: Callable[..., DemoServer], new_page: Callable[[], Any]
) -> None:
    from tests.test_email import SmtpServer, body_of

    smtp = SmtpServer().start()
    try:
        server = demo_server_factory(smtp_url=smtp.url, offline_email_after_seconds=0.0, outbox_poll_seconds=0.2)
        customer = open_widget(new_page(), server)
        customer_says(customer, "Do you roast decaf?")
        form = customer.get_by_label(
            "No one is available right now. Leave your email and we will send the reply there."
        )
        form.fill("gus@example.com")
        customer.get_by_role("button", name="Save email").click()
        expect(
            customer.get_by_text("Thank you. If you have left by then, the reply goes to gus@example.com.")
        ).to_be_visible()
        screenshot(customer, "widget-offline")
        assert customer.errors == []
        customer.context.close()  # the customer leaves the site

        supervisor = server.login("supervisor")["access_token"]
        conversation = only_conversation(server, supervisor)
        assign(server, conversation["id"], "rep")
        rep = server.login("rep")["access_token"]
        deadline = time.monotonic() + 15
        while server.app.state.streams.per_identity.get(conversation["customer_id"]):
            assert time.monotonic() < deadline, "the customer's stream never ended"
            time.sleep(0.05)
        path = f"/api/v1/conversations/{conversation['id']}/messages"
        assert server.call(rep, "POST", path, {"id": "r1", "text": "Yes: the Harbor Decaf."}).status_code == 201
        deadline = time.monotonic() + 30
        while not smtp.inbox.received():
            assert time.monotonic() < deadline, "no email arrived"
            time.sleep(0.05)
        (message,) = smtp.inbox.received()
        assert message["To"] == "gus@example.com" and "Yes: the Harbor Decaf." in body_of(message)
        assert f"{server.url}/?helpline_resume=" in body_of(message)  # tests/test_resume_links.py opens it
    finally:
        smtp.stop()
