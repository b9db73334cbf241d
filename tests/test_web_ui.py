"""The demo site's chat widget and the console, driven in Debian's chromium through Playwright.

Each test runs a demo server on a real socket (``--demo`` seeds the ``demo`` deployment and the staff
users) and drives one browser context per person. Conditions are awaited with Playwright's ``expect``
and ``wait_for_*`` (never a fixed sleep), and every test has a timeout.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from helpline.events import handled_types
from tests.browser import DEMO_PASSWORD, DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EVENT_TYPES = handled_types()  # the event catalogue's list, as stream.js gets it


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
    # Work goes only to reps who can answer it (issue 11): the trainee holds this conversation from
    # before an admin withdrew its access_conversation_entries.
    admin = demo_server.login("admin")["access_token"]
    trainee_id = demo_server.login("trainee")["user"]["id"]
    path = f"/api/v1/admin/users/{trainee_id}"
    granted = ["chat_user", "chat_rep", "access_conversation_entries"]
    assert demo_server.call(admin, "PATCH", path, {"permissions": granted}).status_code == 200
    assign(demo_server, conversation_id, "trainee")
    assert demo_server.call(admin, "PATCH", path, {"permissions": granted[:2]}).status_code == 200

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
    stored_before = customer.evaluate("() => JSON.stringify(localStorage)")  # the session: localStorage (issue 12)

    customer.reload()
    expect(texts(customer, ".log")).to_have_text(expected)  # the panel reopens with the history
    expect(customer.locator(".status")).to_have_text("Riley (rep) joined")
    after = json.loads(customer.evaluate("() => JSON.stringify(localStorage)"))
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


def test_event_source_receives_every_event_in_order(
    demo_server_factory: Callable[..., DemoServer], new_page: Callable[[], Any]
) -> None:
    demo_server = demo_server_factory(heartbeat_seconds=15.0)  # the interval announced below (default: 5 s)
    page = new_page()
    page.goto(f"{demo_server.url}/console")
    supervisor = demo_server.login("supervisor")["access_token"]
    _, before = make_traffic(demo_server, AWKWARD_TEXTS[:3], "replayed")  # replayed from last_event_id=0
    page.evaluate(RAW_EVENT_SOURCE, {"token": supervisor, "types": EVENT_TYPES})
    make_traffic(demo_server, AWKWARD_TEXTS, "live")  # delivered live

    expected = stored_ids(demo_server, supervisor)
    # Ephemeral events (stream.*, queue.stats, typing) carry no id; EventSource repeats the last one for them.
    ephemeral = ["stream.open", "queue.stats", "conversation.typing_started", "conversation.typing_stopped"]
    page.wait_for_function(
        "([n, skip]) => window.received.filter(e => e.lastEventId && !skip.includes(e.type)).length >= n",
        arg=[len(expected), ephemeral],
    )
    received = page.evaluate("() => window.received")
    assert received[0]["type"] == "stream.open"
    assert json.loads(received[0]["data"])["heartbeat_seconds"] == 15.0
    stored = [event for event in received if event["type"] not in ephemeral]
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


@pytest.mark.parametrize("network", ["refused", "stalled"])
def test_stream_module_falls_back_to_long_polling_and_back(
    demo_server: DemoServer, new_page: Callable[[], Any], network: str
) -> None:
    page = new_page()
    # A network that breaks event streams: "refused" fails every EventSource request; "stalled" never
    # answers them, like a proxy buffering the response (no stream.open ever arrives).
    breaks_streams = (lambda route: route.abort()) if network == "refused" else (lambda route: None)
    is_stream = lambda url: "/api/v1/events?" in url  # noqa: E731
    page.route(is_stream, breaks_streams)
    page.goto(f"{demo_server.url}/console")
    supervisor = demo_server.login("supervisor")["access_token"]
    options = {"errorsBeforePolling": 2, "openTimeoutMs": 1500, "pollTimeoutSeconds": 5, "sseRetryMs": 4000}
    page.evaluate(LIVE_EVENTS, {"token": supervisor, "options": options})
    page.wait_for_function("() => window.live.status === 'polling'")
    customer, conversation_id = make_traffic(demo_server, ["polled one", "polled two"], "p")
    expected = stored_ids(demo_server, supervisor)
    page.wait_for_function("n => window.ids.length >= n", arg=len(expected))
    assert page.evaluate("() => window.ids") == expected

    # The network heals: after sseRetryMs the module tries the stream again and stays on it.
    page.unroute(is_stream, breaks_streams)
    page.wait_for_function("() => window.live.status === 'live'", timeout=20_000)
    send_texts(demo_server, customer, conversation_id, ["streamed"], "s")
    expected = stored_ids(demo_server, supervisor)
    page.wait_for_function("n => window.ids.length >= n", arg=len(expected))
    assert page.evaluate("() => window.ids") == expected
    page.evaluate("() => window.live.stop()")


# -- supervisors assign and monitor; reps set presence, transfer and close --------------------------
def test_supervisor_assigns_from_the_console_and_monitors_read_only(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Is anyone there?")
    rep_id = demo_server.login("rep")["user"]["id"]

    supervisor = sign_in(new_page(), demo_server, "supervisor")
    expect(supervisor.locator("#supervisor-note")).to_be_visible()
    expect(supervisor.locator("#presence-field")).to_be_hidden()  # no chat_rep: no presence
    item = supervisor.locator(".conv").first
    expect(item.locator(".badge")).to_have_text("Queued")
    item.click()
    expect(texts(supervisor, "#transcript")).to_have_text(["Is anyone there?"])
    expect(supervisor.get_by_text("You are monitoring this conversation read-only.")).to_be_visible()
    expect(supervisor.locator("#reply-form")).to_be_hidden()
    # The pickers name people (issue 11): the rep is chosen by name, no id typed.
    supervisor.get_by_label("Assign to").select_option(value=rep_id)
    supervisor.get_by_role("button", name="Assign", exact=True).click()
    expect(item.locator(".badge")).to_have_text("Assigned")
    expect(customer.locator(".status")).to_have_text("Riley (rep) joined")

    # What the server refuses is shown with the problem's detail.
    supervisor.get_by_label("Assign to").select_option(value=rep_id)
    supervisor.get_by_role("button", name="Assign", exact=True).click()
    expect(supervisor.locator("#conversation-error")).to_have_text("the conversation is already assigned to this rep")

    # The customer's next message reaches the supervisor's monitor live.
    customer_says(customer, "Thanks!")
    expect(texts(supervisor, "#transcript")).to_have_text(["Is anyone there?", "Thanks!"])
    assert customer.errors == []


def test_rep_sets_presence_transfers_and_closes(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Please transfer me to billing")
    supervisor_token = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor_token)
    assign(demo_server, conversation["id"], "rep")

    rep = sign_in(new_page(), demo_server, "rep")
    rep.get_by_label("Status").select_option("online")
    admin = demo_server.login("admin")["access_token"]
    rep_id = demo_server.login("rep")["user"]["id"]
    expect(rep.get_by_label("Status")).to_have_value("online")
    users = demo_server.call(admin, "GET", "/api/v1/admin/users").json()
    assert next(u for u in users if u["id"] == rep_id)["presence"] == "online"

    # Transfer back to the queue: the conversation leaves the rep's list, the customer waits again.
    rep.locator(f'[data-conversation="{conversation["id"]}"]').click()
    rep.get_by_label("Transfer to").select_option(value=f"queue:{conversation['queue_id']}")
    rep.get_by_role("button", name="Transfer").click()
    expect(rep.locator(f'[data-conversation="{conversation["id"]}"]')).to_have_count(0)
    expect(customer.get_by_text("You are being transferred; please wait")).to_be_visible()
    expect(customer.locator(".status")).to_contain_text("Waiting in queue")

    # Back to the rep, who closes it: both sides show the end.
    assign(demo_server, conversation["id"], "rep")
    rep.locator(f'[data-conversation="{conversation["id"]}"]').click()
    rep.get_by_role("button", name="Close conversation").click()
    expect(rep.locator(f'[data-conversation="{conversation["id"]}"] .badge')).to_have_text("Closed")
    expect(rep.locator("#reply-form")).to_be_hidden()
    expect(customer.get_by_text("This chat has ended.")).to_be_visible()
    expect(customer.get_by_text("Riley (rep) ended the chat")).to_be_visible()
    expect(customer.get_by_label("Message", exact=True)).to_be_hidden()
    assert customer.errors == [] and rep.errors == []


def test_customer_ends_the_chat_and_starts_a_new_one(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Never mind")
    customer.get_by_role("button", name="End chat").click()
    expect(customer.get_by_text("You ended the chat")).to_be_visible()
    customer.get_by_role("button", name="Start a new chat").click()
    expect(texts(customer, ".log")).to_have_count(0)
    customer_says(customer, "Actually, one more thing")
    supervisor = demo_server.login("supervisor")["access_token"]
    conversations = demo_server.call(supervisor, "GET", "/api/v1/conversations").json()["conversations"]
    assert sorted(c["status"] for c in conversations) == ["closed", "queued"]
    assert customer.errors == []


# -- a message whose answer is lost is retried with the same id, and stored once --------------------
def test_sending_while_the_session_is_still_starting_uses_one_session(
    demo_server: DemoServer, new_page: Callable[[], Any]
) -> None:
    """Opening the widget and sending at once must not start a second session: the conversation would
    belong to one customer and the page would hold the other's token ("Not sent: no such conversation")."""
    page = new_page()
    held: list[Any] = []

    def hold(route: Any) -> None:  # answered only when the test says so
        held.append(route)

    page.route("**/sessions", hold)
    page.goto(f"{demo_server.url}/")
    page.get_by_role("button", name="Chat with us").click()
    box = page.get_by_label("Message", exact=True)
    box.fill("Typed before the session was ready")
    box.press("Enter")
    page.wait_for_timeout(500)  # time for a second session request, if the widget were to send one
    assert len(held) == 1, f"{len(held)} session requests while the first was still in flight"
    for route in held:
        route.continue_()
    bubble = page.locator(".msg--own").filter(has=page.locator(".msg__text", has_text="Typed before")).last
    expect(bubble).to_have_attribute("data-state", re.compile("sent|read"))


def test_lost_answer_is_retried_without_duplicating(demo_server: DemoServer, new_page: Callable[[], Any]) -> None:
    customer = open_widget(new_page(), demo_server)
    customer_says(customer, "Opening message")
    attempts: list[str] = []

    def lose_first_answer(route: Any) -> None:
        attempts.append(json.loads(route.request.post_data)["id"])
        if len(attempts) == 1:
            route.fetch()  # the server stores the message ...
            route.abort("connectionreset")  # ... but its answer never reaches the browser
        else:
            route.continue_()

    customer.route(lambda url: url.endswith("/messages"), lose_first_answer)
    # The retry's answer is 200, not 201: the server recognised the client id and stored nothing new.
    is_retry = lambda response: response.url.endswith("/messages") and response.status == 200  # noqa: E731
    with customer.expect_response(is_retry):
        customer_says(customer, "Did this arrive once?")
    assert len(attempts) == 2 and attempts[0] == attempts[1]
    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    entries = demo_server.call(supervisor, "GET", f"/api/v1/conversations/{conversation['id']}/entries").json()
    messages = [e["text"] for e in entries["entries"] if e["type"] == "conversation.message"]
    assert messages == ["Opening message", "Did this arrive once?"]
    expect(texts(customer, ".log")).to_have_text(messages)


# -- the widget embedded on a company's own site (another origin) -----------------------------------
@pytest.fixture
def shop_site() -> Iterator[Callable[[str], str]]:
    """A company's website on another origin (another loopback port), serving one page we give it."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        pages["/"] = html.encode()
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_widget_embedded_on_another_origin(
    demo_server: DemoServer, new_page: Callable[[], Any], shop_site: Callable[[str], str]
) -> None:
    shop_origin = shop_site(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Shop</title></head><body><h1>Shop</h1>"
        f'<script type="module" src="{demo_server.url}/static/widget.js" data-deployment="shop" '
        f'data-server="{demo_server.url}"></script></body></html>'
    )
    admin = demo_server.login("admin")["access_token"]
    body = {"key": "shop", "queue": "support", "allowed_origins": [shop_origin]}
    created = demo_server.call(admin, "POST", "/api/v1/admin/deployments", body)
    assert created.status_code == 201, created.text

    page = new_page()
    page.goto(f"{shop_origin}/")
    page.get_by_role("button", name="Chat with us").click()
    customer_says(page, "Hello from the shop's own site")
    supervisor = demo_server.login("supervisor")["access_token"]
    conversation = only_conversation(demo_server, supervisor)
    assign(demo_server, conversation["id"], "rep")
    expect(page.locator(".status")).to_have_text("Riley (rep) joined")
    assert page.errors == []
