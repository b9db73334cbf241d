"""The network doctor in the browser (``GET /diagnostics``), in Chromium behind the proxies the tests start.

The page runs in the visitor's browser through the visitor's network path, here: straight to the server, a
well-configured nginx, nginx compressing the stream, nginx buffering everything (as TLS inspection does), the
same holding even the response headers, and haproxy cutting idle connections. Each path must get its verdict,
and the verdict names are the ones ``helpline doctor`` uses (``helpline.verdicts``).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from helpline.verdicts import VERDICTS, judge
from tests.browser import DemoServer, browser, demo_server, demo_server_factory, new_page, screenshot
from tests.conftest import LiveServer
from tests.proxies import Proxy, haproxy_proxy, hostile_nginx_proxy, nginx_proxy

__all__ = [  # fixtures
    "browser",
    "demo_server",
    "demo_server_factory",
    "haproxy_proxy",
    "hostile_nginx_proxy",
    "new_page",
    "nginx_proxy",
]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def diagnose_in_browser(new_page: Any, base: str, quiet: int, name: str) -> tuple[str, dict[str, Any]]:
    page = new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{base}/diagnostics?quiet={quiet}", timeout=60_000)
    verdict = page.locator("#verdict[data-verdict]:not([data-verdict=''])")
    verdict.wait_for(timeout=90_000)
    screenshot(page, f"diagnostics-{name}")
    report = json.loads(page.locator("#report").input_value())
    assert [url for url in requests if not url.startswith(base + "/")] == []
    assert page.errors == [], page.errors
    assert report["verdict"] == verdict.get_attribute("data-verdict")
    return report["verdict"], report


def test_a_direct_path_is_fine(live_server: LiveServer, new_page: Any) -> None:
    verdict, report = diagnose_in_browser(new_page, live_server.url, 3, "direct")
    assert verdict == "ok", report
    assert report["idle"]["survived"] and report["heartbeat"]["survived"]
    assert report["poll"]["ok"] and report["fetch"]["diagnostics_header"]
    assert len(report["eventsource"]["probes"]) == 5


def test_a_well_configured_nginx_is_fine(nginx_proxy: Proxy, new_page: Any) -> None:
    verdict, report = diagnose_in_browser(new_page, nginx_proxy.url, 0, "nginx")
    assert verdict == "ok", report


@pytest.mark.parametrize("nginx_proxy", [{"gzip": True}], indirect=True)
def test_a_compressing_nginx_is_named(nginx_proxy: Proxy, new_page: Any) -> None:
    verdict, report = diagnose_in_browser(new_page, nginx_proxy.url, 0, "gzip")
    assert verdict == "stream_compressed", report
    assert report["fetch"]["content_encoding"] == "gzip"


def test_a_buffering_proxy_is_named_and_polling_still_works(hostile_nginx_proxy: Proxy, new_page: Any) -> None:
    verdict, report = diagnose_in_browser(new_page, hostile_nginx_proxy.url, 0, "buffering")
    assert verdict == "stream_buffered", report
    assert report["poll"]["ok"]


@pytest.mark.parametrize("hostile_nginx_proxy", [{"hold_headers": True}], indirect=True)
def test_a_proxy_that_holds_whole_responses_is_named(hostile_nginx_proxy: Proxy, new_page: Any) -> None:
    verdict, report = diagnose_in_browser(new_page, hostile_nginx_proxy.url, 0, "holding")
    assert verdict == "stream_buffered", report


def test_an_idle_cut_is_named_and_heartbeats_keep_the_stream(haproxy_proxy: Proxy, new_page: Any) -> None:
    verdict, report = diagnose_in_browser(new_page, haproxy_proxy.url, 12, "idle")
    assert verdict == "idle_cut", report
    assert not report["idle"]["survived"]
    assert report["heartbeat"]["survived"] and report["heartbeat"]["heartbeats"] >= 2


def test_the_page_and_the_cli_share_one_list_of_verdicts(live_server: LiveServer) -> None:
    served = httpx.get(f"{live_server.url}/api/v1/diagnostics/verdicts", timeout=10).json()
    assert [v["name"] for v in served] == [v.name for v in VERDICTS]
    assert judge({"reachable": False}).name == "unreachable"
    bad = httpx.post(f"{live_server.url}/api/v1/diagnostics/verdict", json={"eventsource": []}, timeout=10)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_helpline_doctor_names_the_same_verdicts(live_server: LiveServer, hostile_nginx_proxy: Proxy) -> None:
    from helpline.doctor import examine

    assert examine(live_server.url, interval=0.5)[1].name == "ok"
    assert examine(hostile_nginx_proxy.url, interval=0.5)[1].name == "stream_buffered"
    assert examine("http://127.0.0.1:9")[1].name == "unreachable"


def test_the_widget_and_the_console_link_to_the_page(demo_server: DemoServer, new_page: Any) -> None:
    page = new_page()
    page.goto(f"{demo_server.url}/")
    page.get_by_role("button", name="Chat with us").click()
    link = page.get_by_role("link", name="Connection problems?")
    link.wait_for()
    assert link.get_attribute("href") == f"{demo_server.url}/diagnostics"
    console = new_page()
    console.goto(f"{demo_server.url}/console")
    assert console.get_by_role("link", name="Connection problems?").get_attribute("href") == "/diagnostics"
    assert httpx.get(f"{demo_server.url}/diagnostics", timeout=10).status_code == 200  # no login
