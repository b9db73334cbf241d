"""A server killed with SIGKILL between an event's commit and its delivery delivers it after a restart.

The server is a real ``helpline serve`` process. The receiver holds the first request open, so the
event is committed and claimed but never acknowledged; the server is killed then; the restarted server
takes the delivery over when the dead process's lease runs out, and the receiver gets the same event.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, free_port
from tests.receiver import Received, Receiver

pytestmark = pytest.mark.timeout(120)
PASSWORD = "demo-password-123"


def start(database: str, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HELPLINE_SECRET_KEY": SECRET,
        "HELPLINE_DEMO_PASSWORD": PASSWORD,
        "HELPLINE_DATABASE_URL": database,
        "HELPLINE_WEBHOOK_ALLOW_PRIVATE": "1",
        "HELPLINE_WEBHOOK_TIMEOUT_SECONDS": "1",
        "HELPLINE_WEBHOOK_LEASE_SECONDS": "1",
        "HELPLINE_WEBHOOK_POLL_SECONDS": "0.2",
        "HELPLINE_WEBHOOK_BACKOFF_SECONDS": "0.1",
        "HELPLINE_PASSWORD_TIME_COST": "1",
        "HELPLINE_PASSWORD_MEMORY_KIB": "1024",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "helpline", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
        time.sleep(0.1)


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigkill_between_commit_and_delivery_delivers_after_restart(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'crash.db'}"
    port = free_port()
    release = threading.Event()

    def answer(request: Received) -> int:
        if json.loads(request.body)["type"] == "conversation.created" and not release.is_set():
            release.wait(30)  # the first attempt hangs until its server is dead
            return 200  # …and this answer goes to a closed socket
        return 200

    base = f"http://127.0.0.1:{port}"
    with Receiver(answer) as receiver:
        server = start(database, port)
        try:
            admin = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
            token = admin.json()["access_token"]
            hook = httpx.post(
                f"{base}/api/v1/admin/webhooks",
                json={"url": receiver.url, "events": ["conversation.created"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert hook.status_code == 201, hook.text
            customer = httpx.post(f"{base}/api/v1/deployments/demo/sessions", json={}).json()["access_token"]
            created = httpx.post(
                f"{base}/api/v1/conversations", json={}, headers={"Authorization": f"Bearer {customer}"}
            )
            assert created.status_code == 201  # committed: its delivery is in the outbox
            wait_until(lambda: receiver.requests_started >= 1, 20, "the first attempt")
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=10)
        release.set()  # the hung attempt is answered now, to a socket nobody holds any more
        wait_until(lambda: len(receiver.all()) >= 1, 10, "the hung attempt to finish")
        first_attempts = len(receiver.all())

        server = start(database, port)
        try:
            wait_until(lambda: len(receiver.all()) > first_attempts, 30, "the delivery after the restart")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    delivered = [r for r in receiver.all() if json.loads(r.body)["type"] == "conversation.created"]
    assert len({r.headers["helpline-event-id"] for r in delivered}) == 1
    assert json.loads(delivered[-1].body)["conversation_id"] == created.json()["id"]
    assert len(delivered) >= 2  # the attempt the dead server never saw answered, and the one after restart
