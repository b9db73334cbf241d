"""Shared fixtures: real SQLite files, a real PostgreSQL database per run, apps in process and on sockets.

A test that needs a service (PostgreSQL, Redis, a proxy binary, chromium, node) skips with the reason
when it is missing, unless ``HELPLINE_REQUIRE_SERVICES=1`` (set by CI), which turns the skip into a
failure so nothing silently stops being tested.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpline import Settings, create_app
from helpline.runner import build_server
from tests.world import World, build_world

REQUIRE_SERVICES = os.environ.get("HELPLINE_REQUIRE_SERVICES") == "1"
SECRET = "test-secret-key-that-is-long-enough-0123456789"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HELPLINE_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


# -- PostgreSQL: one fresh database per test run, emptied between tests --------------------------
POSTGRES_BASE = os.environ.get("HELPLINE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


# -- Redis: one channel per test, so runs sharing the server never hear each other ---------------------
REDIS_BASE = os.environ.get("HELPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_bus_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_BASE)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as exc:
        skip_or_fail(f"Redis is not reachable at {REDIS_BASE}: {exc}")
    return f"{REDIS_BASE}?channel=helpline-test-{uuid.uuid4().hex}"


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    import asyncpg

    name = f"helpline_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_BASE), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_BASE}: {type(exc).__name__}: {exc}")
    url = POSTGRES_BASE.rsplit("/", 1)[0] + "/" + name

    async def migrate() -> None:
        from helpline.store import open_store

        store = await open_store(url, migrate=True)
        await store.close()

    asyncio.run(migrate())
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(
            "TRUNCATE canned_responses, instance_marks, email_outbox, attachments, webhook_deliveries, webhooks, "
            "api_keys, offers, "
            "queue_members, used_stream_tickets, event_recipients, events, participants, "
            "conversations, customers, deployments, queues, users, erasures RESTART IDENTITY CASCADE"
        )
        await conn.execute("UPDATE log_state SET horizon = 0")  # ids restart, so the resume horizon does too
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once per store backend (ids ``sqlite`` and ``postgres``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'helpline.db'}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'helpline.db'}"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    # Cheap argon2 in tests: hashing is exercised all the same, at a fraction of the production cost.
    cheap_passwords = {"password_time_cost": 1, "password_memory_kib": 1024}
    return Settings(database_url=database_url, secret_key=SECRET, **{**cheap_passwords, **overrides})


# -- in-process app ----------------------------------------------------------------------------
@asynccontextmanager
async def unlimited_app(folder: Path) -> AsyncIterator[FastAPI]:
    """A running app on its own SQLite file with rate limits out of the way, for a module's many calls
    by a few identities (the module-scoped ``app`` fixtures of the authorization, bad-input and
    fast-path suites)."""
    settings = make_settings(
        f"sqlite:///{folder / 'helpline.db'}", rate_limit_per_minute=100_000, login_attempts_per_minute=100_000
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(sqlite_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


# -- a real server on a real socket ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """uvicorn in a thread, for anything that streams (in-process clients buffer whole bodies)."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = build_server(self.app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.stop_gracefully()
        self.thread.join(timeout=15)
        if self.thread.is_alive():  # the graceful path is under test elsewhere; never hang the suite
            self.server.should_exit = True
            self.thread.join(timeout=15)


@pytest.fixture
def live_settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, heartbeat_seconds=15.0)


@pytest.fixture
def live_server(live_settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(live_settings).start()
    try:
        yield server
    finally:
        server.stop()
