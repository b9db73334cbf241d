"""The event catalogue (helpline/events.py) is the one list of event types: the docs table is it,
the browser code imports it, the server names types only through it, and every event starts with
its envelope."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from helpline.events import EventType, Stored, encode, envelope, handled_types, javascript_module, markdown_table
from helpline.web import apidocs

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "helpline"


def test_docs_events_md_holds_the_catalogue_table() -> None:
    document = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert markdown_table() in document, "run: python -m helpline.events docs/events.md"


def test_every_type_is_listed_once_with_its_facts() -> None:
    names = [str(t) for t in EventType]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z]+\.[a-z_]+", name) for name in names)
    assert all(t.audience and t.fields for t in EventType)
    assert EventType("conversation.message").stored is Stored.YES
    assert EventType.CONVERSATION_TYPING_STARTED.stored is Stored.LIVE
    assert not EventType.STREAM_OPEN.handled and EventType.STREAM_RESET.handled


def test_the_envelope_comes_first() -> None:
    body = envelope(EventType.QUEUE_STATS, None, {"queues": []})
    assert list(body) == ["type", "conversation_id", "at", "queues"]
    assert json.loads(encode(EventType.CONVERSATION_READ, "c1", {"entry_id": 3}))["type"] == "conversation.read"


def test_the_server_names_event_types_only_through_the_catalogue() -> None:
    """No module of the server spells an event type out (the Python client, a separate library, may)."""
    names = {str(t) for t in EventType}
    literal = re.compile(r"""["']([a-z]+\.[a-z_]+)["']""")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "events.py" or "client" in path.relative_to(PACKAGE).parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            offenders += [f"{path.relative_to(ROOT)}:{number}: {m}" for m in literal.findall(line) if m in names]
    for path in (PACKAGE / "web" / "static").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(ROOT)}: {m}" for m in literal.findall(text) if m in names]
    assert offenders == []


async def test_the_browser_gets_the_catalogue_from_the_server(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/events.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["access-control-allow-origin"] == "*"  # imported by the widget on other origins
    assert response.text == javascript_module()
    assert f"EVENT_TYPES = Object.freeze({json.dumps(handled_types())})" in response.text
    stream_js = (PACKAGE / "web" / "static" / "stream.js").read_text(encoding="utf-8")
    assert "from './events.js'" in stream_js


def test_the_openapi_description_lists_the_catalogue() -> None:
    assert apidocs.event_types() == handled_types()
