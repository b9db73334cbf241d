"""Playwright fixtures: Debian's chromium (never a downloaded browser) against a demo server on a socket.

Import the fixtures into a test module with ``from tests.browser import *``-style explicit imports.
The browser is module-scoped (starting chromium is the slow part); every test gets fresh contexts,
so cookies and sessionStorage never leak between tests.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpline import create_app
from helpline.runner import build_server
from tests.conftest import LiveServer, free_port, make_settings, skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_PASSWORD = "demo-password-123"
# Set HELPLINE_SCREENSHOTS=/some/dir to keep a screenshot of each page for a human to look at.
SCREENSHOTS = os.environ.get("HELPLINE_SCREENSHOTS")


class DemoServer(LiveServer):
    """A LiveServer in ``--demo`` mode whose public URL (the demo deployment's allowed origin) is its own."""

    def __init__(self, database_url: str, **overrides: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # public_url (the demo deployment's allowed origin) may be overridden: a page served through a proxy.
        overrides = {"public_url": self.url, **overrides}
        settings = make_settings(database_url, demo=True, demo_password=DEMO_PASSWORD, **overrides)
        self.app = create_app(settings)
        self.server = build_server(self.app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def login(self, username: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}, timeout=10
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def call(self, token: str, method: str, path: str, json: Any = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", json=json, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium); browser tests need Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def demo_server_factory(tmp_path: Path) -> Iterator[Callable[..., DemoServer]]:
    servers: list[DemoServer] = []

    def start(**overrides: Any) -> DemoServer:
        server = DemoServer(f"sqlite:///{tmp_path / f'demo{len(servers)}.db'}", **overrides)
        servers.append(server)
        return server.start()  # type: ignore[return-value]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def demo_server(demo_server_factory: Callable[..., DemoServer]) -> DemoServer:
    return demo_server_factory()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[], Any]]:
    """Pages in fresh contexts (separate storage: one per person); each records its console errors."""
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda message: console_error(page, message))
        page.on("response", lambda response: failed_response(page, response))
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()


def console_error(page: Any, message: Any) -> None:
    # Chromium logs every 4xx answer as "Failed to load resource"; the API's refusals are part of the
    # flows under test (a 404 after a transfer, a 403 for a trainee), so those are judged by the tests.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        page.errors.append(message.text)


def failed_response(page: Any, response: Any) -> None:
    """Record server errors, and any missing page, script or stylesheet."""
    if response.status >= 500 or (response.status >= 400 and "/api/" not in response.url):
        page.errors.append(f"{response.status} {response.request.method} {response.url}")


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))
