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


def test_serve_refuses_a_secret_key_shorter_than_32_bytes_even_with_demo(tmp_path: Path) -> None:
    env = {"HELPLINE_SECRET_KEY": "abc", "HELPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    for demo in ([], ["--demo"]):
        result = run("serve", *demo, "--port", str(free_port()), env=env)
        assert result.returncode == 2, result.stderr
        assert "HELPLINE_SECRET_KEY is 3 bytes; it must be at least 32 bytes" in result.stderr
    # 32 bytes is enough, counted in bytes: 16 two-byte characters pass, 31 ASCII ones do not.
    from helpline.config import ConfigurationError, Settings

    assert Settings(secret_key="é" * 16).checked().secret_key == "é" * 16
    with pytest.raises(ConfigurationError):
        Settings(secret_key="x" * 31, demo=True).checked()


def test_demo_refuses_a_database_it_did_not_create_and_leaves_its_admin_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'real.db'}"
    created = run(
        "users",
        "create",
        "admin",
        "-p",
        "chat_user",
        "-p",
        "admin",
        "--database-url",
        url,
        stdin="the-real-admins-password\n",
    )
    assert created.returncode == 0, created.stderr
    env = {"HELPLINE_SECRET_KEY": SECRET, "HELPLINE_DEMO_PASSWORD": "demo-password-123"}
    refused = run("serve", "--demo", "--port", str(free_port()), "--database-url", url, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "--demo refuses this database" in refused.stderr and "demo-password-123" not in refused.stdout

    async def admin_password_still_works() -> bool:
        from helpline.domain.accounts import Accounts
        from helpline.store import open_store
        from tests.conftest import make_settings

        store = await open_store(url)
        try:
            await Accounts(store, make_settings(url)).login("admin", "the-real-admins-password")
            async with store.read() as s:
                user = await s.user(username="admin")
            assert user is not None and sorted(user.permissions) == ["admin", "chat_user"]
            return True
        finally:
            await store.close()

    assert asyncio.run(admin_password_still_works())


async def test_demo_reseeds_a_database_it_created_and_refuses_one_set_up_by_hand(tmp_path: Path) -> None:
    from helpline import create_app
    from helpline.domain.accounts import Accounts
    from helpline.store import open_store
    from tests.conftest import make_settings

    demo_url = f"sqlite:///{tmp_path / 'demo.db'}"
    for _ in range(2):  # the second start finds its own mark and seeds again (new password, same users)
        app = create_app(make_settings(demo_url, demo=True, demo_password="demo-password-123"))
        async with app.router.lifespan_context(app):
            await app.state.services.accounts.login("admin", "demo-password-123")

    hand_url = f"sqlite:///{tmp_path / 'hand.db'}"
    store = await open_store(hand_url)
    try:
        await Accounts(store, make_settings(hand_url)).create_queue("support")
    finally:
        await store.close()
    app = create_app(make_settings(hand_url, demo=True, demo_password="demo-password-123"))
    from helpline.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="--demo refuses this database"):
        async with app.router.lifespan_context(app):
            pass
