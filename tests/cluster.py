"""A real cluster for the delivery tests: ``helpline serve`` nodes (subprocesses on free ports) on one
PostgreSQL database of their own and a ``redis-server`` of their own.

Good guest: the system's Redis and PostgreSQL are shared with other test runs, so nothing here stops or
restarts them. The Redis these tests restart is the one they started; the backends they terminate are
their own database's (filtered by ``datname``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import POSTGRES_BASE, SECRET, _asyncpg_dsn, free_port, skip_or_fail
from tests.proxies import Proxy, _run, find_binary

HELPLINE = [sys.executable, "-m", "helpline"]
DEMO_PASSWORD = "demo-password-123"


class OwnRedis:
    """A ``redis-server`` of our own on a free port, which a test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("redis-server is not installed")
        self.binary = binary or "redis-server"
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                import socket

                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "our redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # only ever the one we started, by its own handle
            self.process.wait(timeout=10)
        self.process = None


class OwnDatabase:
    """A PostgreSQL database of our own, migrated, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"helpline_delivery_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = POSTGRES_BASE.rsplit("/", 1)[0] + "/" + self.name

    async def _admin(self, sql: str, *args: Any) -> Any:
        import asyncpg

        conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_BASE), timeout=5)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    def create(self) -> None:
        import asyncpg

        try:
            asyncio.run(self._admin(f'CREATE DATABASE "{self.name}"'))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_BASE}: {exc}")

        async def migrate() -> None:
            from helpline.store import open_store

            store = await open_store(self.url, migrate=True)
            await store.close()

        asyncio.run(migrate())

    def drop(self) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    async def terminate_backends(self) -> int:
        """``pg_terminate_backend`` every connection to this database (and only this one)."""
        rows = await self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.name,
        )
        return len(rows)


class Node:
    def __init__(self, name: str, database: OwnDatabase, redis: OwnRedis, folder: Path, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HELPLINE_SECRET_KEY": SECRET,
            "HELPLINE_DEMO_PASSWORD": DEMO_PASSWORD,
            "HELPLINE_DATABASE_URL": database.url,
            "HELPLINE_BUS_URL": redis.url,
            "HELPLINE_RATE_LIMIT_PER_MINUTE": "1000000",
            "HELPLINE_LOGIN_ATTEMPTS_PER_MINUTE": "1000000",  # every test logs in from 127.0.0.1, counted cluster-wide
            "HELPLINE_MAX_STREAMS_PER_IDENTITY": "50",
            **env,
        }
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / f"{name}.log"

    def spawn(self, *, demo: bool = False) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*HELPLINE, "serve", "--port", str(self.port), *(["--demo"] if demo else [])],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"node {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"node {self.name} did not start: {self.log.read_text()[-3000:]}"
            time.sleep(0.2)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no goodbye to the streams or the database."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def wait_dead(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


HAPROXY_CONF = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend helpline
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""


@contextmanager
def haproxy_in_front(nodes: list[Node], folder: Path) -> Iterator[Proxy]:
    """haproxy round-robin over ``nodes``, checking ``/readyz`` (the config of docs/deployment.md)."""
    binary = find_binary("haproxy")
    port = free_port()
    servers = "\n".join(f"    server {node.name} 127.0.0.1:{node.port} check inter 1s fall 2 rise 1" for node in nodes)
    config = folder / "haproxy.cfg"
    config.write_text(HAPROXY_CONF.format(port=port, servers=servers))
    with _run("haproxy", [binary, "-f", str(config), "-db"], folder, port, signal.SIGTERM) as proxy:
        yield proxy
