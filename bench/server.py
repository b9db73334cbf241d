"""Helpline under test: ``helpline serve --demo`` as a subprocess, its database, and its stage set-up.

A subprocess, not a thread, so the server's RSS and CPU can be read from /proc apart from the
generator's. Limits that protect a production server from abuse (streams per identity, requests per
minute) are raised through ``HELPLINE_<FIELD>`` variables, since the load comes from few addresses and
identities by design; everything else runs as shipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.api import Api
from bench.procstat import cpu_seconds, rss_kb

REDIS_URL = os.environ.get("HELPLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_URL = os.environ.get("HELPLINE_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
LOAD_LIMITS = {
    "HELPLINE_MAX_STREAMS_PER_IDENTITY": "100000",
    "HELPLINE_MAX_STREAMS_TOTAL": "100000",
    "HELPLINE_RATE_LIMIT_PER_MINUTE": "1000000000",
    "HELPLINE_LOGIN_ATTEMPTS_PER_MINUTE": "1000000000",
    # Streams must outlive a whole scenario: a lifetime reconnect mid-phase would be a resume, not chat.
    "HELPLINE_STREAM_LIFETIME_SECONDS": "3600",
    # Setting up the resume storm's 10,000 streams logs in 1,667 reps: at production argon2 cost that is
    # minutes of set-up. Passwords are only checked at login, which no scenario measures; tokens are
    # still signed and verified on every request.
    "HELPLINE_PASSWORD_TIME_COST": "1",
    "HELPLINE_PASSWORD_MEMORY_KIB": "8192",
    # As nchan runs here (``access_log off`` in bench/nchan.py): a proxy in front keeps that log.
    "HELPLINE_ACCESS_LOG": "false",
    # Every stream of a scenario comes from 127.0.0.1; the per-address cap (256) protects a node exposed
    # directly, and a real deployment's many clients never meet it.
    "HELPLINE_MAX_CONNECTIONS_PER_ADDRESS": "100000",
    # nginx's default keepalive_timeout (nchan here): with Helpline's 5 s, a sender's connection idle
    # for 5 s could be closed just as its next message went out (a "connection lost" failure).
    "HELPLINE_KEEPALIVE_SECONDS": "75",
}


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (``/proc/<pid>/task/<tid>/children``), depth first."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


async def _postgres(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


class HelplineServer:
    """One server process on a fresh database (``sqlite`` file or a new PostgreSQL database)."""

    def __init__(self, backend: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        # "postgres-w2": two worker processes (``helpline serve --workers 2``) joined by the Redis bus.
        self.extra_env = dict(env or {})  # HELPLINE_* settings of one measurement (bench/heartbeats.py)
        self.backend, _, workers = backend.partition("-w")
        self.workers = int(workers or 1)
        self.name = f"helpline-{backend}"
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.password = secrets.token_urlsafe(12)
        self.database = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def pids(self) -> list[int]:
        """The server's processes, workers first (what a profiler samples), then their supervisor."""
        if self.process is None:
            return []
        return [*descendants(self.process.pid), self.process.pid]

    def rss_kb(self) -> int:
        return rss_kb(self.pids)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
        env.update(LOAD_LIMITS)
        env.update(
            HELPLINE_DEMO_PASSWORD=self.password,
            HELPLINE_DATABASE_URL=self.database,
            HELPLINE_SECRET_KEY=secrets.token_urlsafe(48),
        )
        env.update(self.extra_env)
        if self.workers > 1:
            env.update(
                HELPLINE_WORKERS=str(self.workers), HELPLINE_BUS_URL=f"{REDIS_URL}?channel={self.name}-{os.getpid()}"
            )
        return env

    async def start(self) -> None:
        if self.backend == "sqlite":
            path = self.workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
            self.database = f"sqlite:///{path}"
        else:
            name = f"helpline_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            await _postgres(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"')
            self.database = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
            await asyncio.to_thread(self._upgrade)
        self.process = await asyncio.to_thread(self._spawn)
        await asyncio.to_thread(wait_for_port, self.port, self.process)

    def _upgrade(self) -> None:
        """PostgreSQL is migrated explicitly, as in production (``helpline db upgrade``)."""
        command = [sys.executable, "-m", "helpline", "db", "upgrade"]
        subprocess.run(command, env=self._env(), cwd=self.workdir, check=True, capture_output=True, timeout=120)

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "helpline", "serve", "--demo", "--port", str(self.port)]
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(command, env=self._env(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait, 10)
        self.process = None
        if self.backend == "postgres" and self.database:
            name = self.database.rsplit("/", 1)[1]
            await _postgres(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif self.database:
            _remove_sqlite(self.database.removeprefix("sqlite:///"))
        self.database = ""


class HelplineStage:
    """Builds what a scenario needs through Helpline's real API: reps, customers, assigned conversations."""

    def __init__(self, server: HelplineServer) -> None:
        self.server = server
        self.api = Api(server.host, server.port)
        self.supervisor = ""
        self.reps: list[tuple[str, str]] = []  # (user id, access token)
        self._serial = 0

    @property
    def authority(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    async def login(self, username: str, password: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        return answer

    async def ensure_reps(self, count: int) -> list[tuple[str, str]]:
        """``count`` reps (chat_user, chat_rep, access_conversation_entries), created once per server."""
        if not self.supervisor:
            self.supervisor = (await self.login("supervisor", self.server.password))["access_token"]
        if len(self.reps) < count:
            admin = (await self.login("admin", self.server.password))["access_token"]
            permissions = ["chat_user", "chat_rep", "access_conversation_entries"]
            password = secrets.token_urlsafe(12)
            for index in range(len(self.reps), count):
                await self.api.call(
                    "POST",
                    "/api/v1/admin/users",
                    {"username": f"benchrep{index}", "password": password, "permissions": permissions},
                    token=admin,
                )
            names = [f"benchrep{i}" for i in range(len(self.reps), count)]
            answers = await self.api.gather([self.login(n, password) for n in names], concurrency=4)
            self.reps += [(a["user"]["id"], a["access_token"]) for a in answers]
        return self.reps[:count]

    async def customers(self, count: int) -> list[tuple[str, str]]:
        """``count`` new guest customers: (access token, the session's ``last_event_id``)."""
        calls = [self.api.call("POST", "/api/v1/deployments/demo/sessions", {}) for _ in range(count)]
        return [(a["access_token"], a["last_event_id"]) for a in await self.api.gather(calls)]

    async def _conversation(self, token: str, rep_id: str) -> str:
        self._serial += 1
        answer = await self.api.call("POST", "/api/v1/conversations", {"id": f"bench-{self._serial}"}, token=token)
        conversation_id: str = answer["id"]
        await self.api.call(
            "POST", f"/api/v1/conversations/{conversation_id}/assign", {"user_id": rep_id}, token=self.supervisor
        )
        return conversation_id

    def stream_spec(self, token: str, start: str | None = None) -> dict[str, Any]:
        """A stream request. Customers start from their session's ``last_event_id``, as the widget and the
        Python client do: the URL keeps it, so even a reconnect before any event with an id resumes there.
        Staff have no such starting point (see RESULTS.md, "stream.open carries no id")."""
        path = "/api/v1/events" if start is None else f"/api/v1/events?last_event_id={start}"
        return {"path": path, "headers": {"Authorization": f"Bearer {token}"}}

    async def idle_streams(self, count: int, per_identity: int) -> list[dict[str, Any]]:
        customers = await self.customers(-(-count // per_identity))
        return [self.stream_spec(*customers[i // per_identity]) for i in range(count)]

    async def chat_world(self, conversations: int, per_rep: int, workers: int) -> list[dict[str, Any]]:
        """Per worker: its reps' streams and conversations, so each worker checks its own deliveries."""
        reps = await self.ensure_reps(max(1, -(-conversations // per_rep)))
        customers = await self.customers(conversations)
        tokens = [token for token, _ in customers]
        rep_of = [i % len(reps) for i in range(conversations)]
        ids = await self.api.gather([self._conversation(tokens[i], reps[rep_of[i]][0]) for i in range(conversations)])
        worlds: list[dict[str, Any]] = [{"streams": [], "conversations": []} for _ in range(workers)]
        rep_stream: dict[int, tuple[int, int]] = {}
        for r, (_rep_id, rep_token) in enumerate(reps):
            w = r % workers
            rep_stream[r] = (w, len(worlds[w]["streams"]))
            worlds[w]["streams"].append(self.stream_spec(rep_token))
        for i, conversation_id in enumerate(ids):
            w, rep_index = rep_stream[rep_of[i]]
            world = worlds[w]
            customer_index = len(world["streams"])
            world["streams"].append(self.stream_spec(*customers[i]))
            path = f"/api/v1/conversations/{conversation_id}/messages"
            heads = [
                f"POST {path} HTTP/1.1\r\nHost: {self.authority}\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\n"
                for token in (tokens[i], reps[rep_of[i]][1])
            ]
            world["conversations"].append(
                {"publish": heads, "body": '{"id":"%s","text":"x"}', "streams": [customer_index, rep_index]}
            )
        return worlds

    def close(self) -> None:
        self.api.close()
