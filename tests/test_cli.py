"""The ``helpline`` command, run as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, free_port
from tests.streams import open_stream, opened

pytestmark = pytest.mark.timeout(90)
HELPLINE = [sys.executable, "-m", "helpline"]


def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HELPLINE, *args], input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_admin_commands_create_what_a_server_then_uses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run("db", "upgrade", "--database-url", url).returncode == 0
    assert run("queues", "create", "billing", "--database-url", url).returncode == 0
    created = run(
        "deployments",
        "create",
        "shop",
        "--queue",
        "billing",
        "--allowed-origin",
        "https://shop.example",
        "--database-url",
        url,
    )
    assert created.returncode == 0, created.stderr
    user = run(
        "users",
        "create",
        "riley",
        "--permission",
        "chat_user",
        "--permission",
        "chat_rep",
        "--database-url",
        url,
        stdin="a-long-password\n",
    )
    assert user.returncode == 0, user.stderr
    assert "chat_rep, chat_user" in user.stdout
    again = run("queues", "create", "billing", "--database-url", url)
    assert again.returncode == 2 and "exists" in again.stderr
    bad = run("users", "create", "x", "-p", "emperor", "--database-url", url, stdin="a-long-password\n")
    assert bad.returncode == 2 and "unknown permissions: emperor" in bad.stderr


def test_the_environment_configures_every_option(tmp_path: Path) -> None:
    env = {"HELPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    assert run("queues", "create", "from-env", env=env).returncode == 0
    assert (tmp_path / "env.db").exists()


def test_serve_refuses_to_start_without_a_secret_key_outside_demo(tmp_path: Path) -> None:
    env = {"HELPLINE_SECRET_KEY": "", "HELPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = run("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 2 and "HELPLINE_SECRET_KEY is required" in result.stderr


def test_sigterm_ends_every_stream_with_reconnect_and_the_server_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HELPLINE_SECRET_KEY": SECRET,
        "HELPLINE_DEMO_PASSWORD": "demo-password-123",
        "HELPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
    }
    server = subprocess.Popen(
        [*HELPLINE, "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.1)

        async def stream_through_shutdown() -> list[str]:
            async with httpx.AsyncClient(base_url=base) as http:
                token = (await http.post("/api/v1/deployments/demo/sessions", json={})).json()["access_token"]
            async with open_stream(base, token) as stream:
                await opened(stream)
                server.send_signal(signal.SIGTERM)
                return [e.event for e in await stream.drain_to_end(timeout=10)]

        events = asyncio.run(stream_through_shutdown())
        assert events[-1:] == ["stream.reconnect"]
        # uvicorn re-raises the signal once its graceful shutdown is done, as a well-behaved daemon should.
        assert server.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
        output, _ = server.communicate(timeout=10)
    assert "password: demo-password-123" in output
