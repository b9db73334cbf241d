"""``/docs`` works offline: every asset comes from Helpline itself (issue 15).

In Chromium, the page must render the API's operations while every request it makes goes to the
server's own origin. The schema describes the streams as ``text/event-stream`` with the event catalogue.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from helpline.web import apidocs
from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot

__all__ = ["browser", "demo_server", "demo_server_factory", "new_page"]  # fixtures, re-exported for pytest


def record_requests(page: Any) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    return requests


def foreign(requests: list[str], server: DemoServer) -> list[str]:
    own = server.url + "/"
    return [url for url in requests if not url.startswith(own) and not url.startswith(("data:", "blob:"))]


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_swagger_ui_renders_the_operations_with_no_request_leaving_the_server(
    demo_server: DemoServer, new_page: Any
) -> None:
    page = new_page()
    requests = record_requests(page)
    page.goto(f"{demo_server.url}/docs", timeout=60_000)  # a 1.5 MB bundle, on a loaded machine
    page.locator(".opblock").first.wait_for(timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/events" in p for p in paths), paths
    assert any(p.replace("\u200b", "").endswith("}/messages") for p in paths), paths
    # Open the stream's operation: its response is documented as text/event-stream.
    page.locator(".opblock-summary-path[data-path='/api/v1/events']").click()
    media_types = page.locator(".opblock.is-open .responses-wrapper select option")
    media_types.first.wait_for(state="attached")
    assert "text/event-stream" in media_types.all_inner_texts()
    assert "conversation.message" in page.locator(".opblock.is-open .opblock-description").inner_text()
    screenshot(page, "api-docs")
    assert any(url.endswith("/openapi.json") for url in requests)
    assert any(url.endswith("/static/api-docs/swagger-ui-bundle.js") for url in requests)
    assert foreign(requests, demo_server) == []
    assert page.errors == []


def test_the_pages_name_no_other_origin(demo_server: DemoServer) -> None:
    page = httpx.get(f"{demo_server.url}/docs", timeout=10)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    # ReDoc's bundle fetches its logo from a CDN, so there is no /redoc (rather than a page that phones out).
    assert httpx.get(f"{demo_server.url}/redoc", timeout=10).status_code == 404
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        response = httpx.get(f"{demo_server.url}/static/api-docs/{asset}", timeout=10)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset


def test_the_streams_are_text_event_stream_with_the_event_catalogue(demo_server: DemoServer) -> None:
    schema: dict[str, Any] = httpx.get(f"{demo_server.url}/openapi.json", timeout=10).json()
    types = apidocs.event_types()
    assert "conversation.message" in types and "stream.reset" in types
    stream = schema["paths"]["/api/v1/events"]["get"]
    content = stream["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    assert content["text/event-stream"]["x-event-types"] == types
    for event_type in types:
        assert f"`{event_type}`" in stream["description"]
    poll = schema["paths"]["/api/v1/events/poll"]["get"]
    poll_schema = poll["responses"]["200"]["content"]["application/json"]["schema"]
    assert poll_schema["properties"]["events"]["items"] == {"$ref": "#/components/schemas/Event"}
    assert schema["components"]["schemas"]["Event"]["properties"]["type"]["enum"] == types
    diagnostics = schema["paths"]["/api/v1/diagnostics/stream"]["get"]["responses"]["200"]["content"]
    assert list(diagnostics) == ["text/event-stream"]
