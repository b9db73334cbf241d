"""``helpline doctor`` names what breaks SSE on a path: tested against real proxies that do break it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpline.doctor import diagnose
from tests.conftest import LiveServer
from tests.proxies import haproxy, nginx

pytestmark = [pytest.mark.timeout(90), pytest.mark.proxy]


def statuses(url: str, **options: float) -> dict[str, str]:
    return {check.name: check.status for check in diagnose(url, interval=0.5, **options)}


def test_a_direct_path_is_healthy_and_json_output_is_machine_readable(live_server: LiveServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpline", "doctor", live_server.url, "--json", "--idle-seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert {name: c["status"] for name, c in checks.items()} == {
        "reachable": "ok",
        "tls": "warn",
        "headers": "ok",
        "buffering": "ok",
        "idle_timeout": "ok",
    }


def test_a_proxy_that_buffers_and_compresses_the_stream_is_named(live_server: LiveServer) -> None:
    with nginx(live_server.url, hostile=True) as proxy:
        found = statuses(proxy.url)
    assert found["buffering"] == "fail"
    assert found["headers"] == "warn"  # Content-Encoding appeared on the way


def test_an_idle_timeout_shorter_than_a_silence_is_found(live_server: LiveServer) -> None:
    with haproxy(live_server.url, idle_seconds=2) as proxy:
        found = statuses(proxy.url, idle_seconds=4)
    assert found["idle_timeout"] == "fail" and found["buffering"] == "ok"


def test_an_unreachable_server_fails_clearly() -> None:
    checks = diagnose("http://127.0.0.1:9")
    assert [(c.name, c.status) for c in checks] == [("reachable", "fail")]
