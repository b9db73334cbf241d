"""``helpline db backup PATH`` under write load: a consistent copy, restorable, with every acknowledged message.

Two customers post messages to a running server without pause while ``helpline db backup`` runs as its
own process. Every message acknowledged (2xx) before the backup command started must be in the copy;
each conversation in the copy must be a prefix of what its writer had acknowledged (one snapshot, not a
torn mix); and a server started on the restored copy serves those messages.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpline import create_app
from helpline.config import ConfigurationError
from helpline.runner import build_server
from helpline.store.backup import backup_sqlite
from tests.conftest import SECRET, LiveServer, free_port, make_settings

pytestmark = pytest.mark.timeout(120)


class Server(LiveServer):
    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = make_settings(
            database_url, demo=True, demo_password="backup-demo-pw", public_url=self.url, rate_limit_per_minute=10**6
        )
        self.app = create_app(settings)
        self.server = build_server(self.app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)


def helpline(*args: str | Path, database: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELPLINE_DATABASE_URL": f"sqlite:///{database}", "HELPLINE_SECRET_KEY": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "helpline", *map(str, args)], capture_output=True, text=True, timeout=60, env=env
    )


class Writer(threading.Thread):
    """One customer posting to one conversation until told to stop; remembers what was acknowledged, in order."""

    def __init__(self, base: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, timeout=30)
        session = self.client.post("/api/v1/deployments/demo/sessions", json={}, headers={"Origin": base})
        assert session.status_code == 201, session.text
        self.token = session.json()["access_token"]
        self.client.headers["Authorization"] = f"Bearer {self.token}"
        created = self.client.post("/api/v1/conversations", json={})
        assert created.status_code == 201, created.text
        self.conversation = created.json()["id"]
        self.stop = stop
        self.acknowledged: list[tuple[float, str]] = []  # (monotonic time of the 2xx, message id)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                message_id = uuid.uuid4().hex
                while True:  # the same id again after a 429 or 503: idempotent, never a duplicate
                    answer = self.client.post(
                        f"/api/v1/conversations/{self.conversation}/messages", json={"id": message_id, "text": "x"}
                    )
                    if answer.status_code in (429, 503):
                        time.sleep(0.05)
                        continue
                    assert answer.status_code in (200, 201), answer.text
                    break
                self.acknowledged.append((time.monotonic(), message_id))
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()


def stored_messages(database: Path, conversation: str) -> list[str]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT client_id FROM events WHERE conversation_id = ? AND type = 'conversation.message' ORDER BY id",
            (conversation,),
        ).fetchall()
    return [row[0] for row in rows]


def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_backup_under_write_load_restores_every_acknowledged_message(tmp_path: Path) -> None:
    database = tmp_path / "live.db"
    server = Server(f"sqlite:///{database}").start()
    stop = threading.Event()
    writers: list[Writer] = []
    try:
        writers = [Writer(server.url, stop) for _ in range(2)]
        for writer in writers:
            writer.start()
        wait_for(lambda: all(len(w.acknowledged) >= 20 for w in writers), 60)
        started = time.monotonic()
        backup = tmp_path / "backup.db"
        done = helpline("db", "backup", backup, database=database)
        assert done.returncode == 0, done.stderr
        assert "backed up to" in done.stdout
        # The writers kept writing during the copy and after it.
        count_after = [len(w.acknowledged) for w in writers]
        wait_for(lambda: all(len(w.acknowledged) > c + 5 for w, c in zip(writers, count_after, strict=True)), 60)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
        server.stop()
    for writer in writers:
        assert writer.error is None, writer.error
        acknowledged = [message for _, message in writer.acknowledged]
        before = [message for at, message in writer.acknowledged if at < started]
        copied = stored_messages(backup, writer.conversation)
        assert copied[: len(before)] == before, "a message acknowledged before the backup is missing"
        assert copied == acknowledged[: len(copied)], "the copy is not one snapshot of the log"
        assert len(copied) < len(acknowledged), "the writers did not keep writing during the backup"
    assert not list(tmp_path.glob(".backup.db.partial-*"))

    # Restore: a server on the copy serves those messages to their customer (the same secret key).
    restored = tmp_path / "restored.db"
    restored.write_bytes(backup.read_bytes())
    again = Server(f"sqlite:///{restored}").start()
    try:
        for writer in writers:
            headers = {"Authorization": f"Bearer {writer.token}"}
            texts: list[str] = []
            cursor = None
            while True:
                params = {"limit": 100, **({"after": cursor} if cursor else {})}
                page = httpx.get(
                    f"{again.url}/api/v1/conversations/{writer.conversation}/entries",
                    params=params,
                    headers=headers,
                    timeout=10,
                )
                assert page.status_code == 200, page.text
                body = page.json()
                texts += [e["message_id"] for e in body["entries"] if e["type"] == "conversation.message"]
                cursor = body.get("next_cursor")
                if not cursor:
                    break
            assert texts == stored_messages(backup, writer.conversation)
    finally:
        again.stop()


def test_backup_refuses_what_it_cannot_do_well(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite"
    url = f"sqlite:///{database}"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY)")
    target = tmp_path / "copy.db"
    assert backup_sqlite(url, target).last_event_id == 0
    exists = helpline("db", "backup", target, database=database)  # the command line says why, exit 2
    assert exists.returncode == 2 and "--force" in exists.stderr
    assert backup_sqlite(url, target, overwrite=True).path == target
    refusals = {
        "must not replace": lambda: backup_sqlite(url, database, overwrite=True),
        "no SQLite database": lambda: backup_sqlite(f"sqlite:///{tmp_path / 'nope.db'}", target, overwrite=True),
        "pg_dump": lambda: backup_sqlite("postgresql://127.0.0.1:5432/test", target, overwrite=True),
        "in-memory": lambda: backup_sqlite("sqlite://", target, overwrite=True),
    }
    for reason, attempt in refusals.items():
        with pytest.raises(ConfigurationError, match=reason):
            attempt()
