"""API keys: named, a subset of the permissions, shown once, stored hashed, revocable at once everywhere."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from helpline.cli import app as cli
from helpline.store import schema
from tests.conftest import SECRET, LiveServer, free_port, make_settings
from tests.world import World, build_world


@pytest.fixture
async def kw(app: FastAPI, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


async def create_key(world: World, name: str, permissions: list[str], **body: str) -> dict[str, str]:
    response = await world.call(
        "admin", "POST", "/api/v1/admin/api-keys", {"name": name, "permissions": permissions, **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    assert created["key"].startswith("hlk_") and created["key"].startswith(created["prefix"])
    return created


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_key_carries_its_permissions_and_is_refused_once_revoked(
    kw: World, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    crm = await create_key(kw, "crm-export", ["chat_user", "supervisor"])
    listed = (await kw.call("admin", "GET", "/api/v1/admin/api-keys")).json()
    assert (
        [k["name"] for k in listed] == ["crm-export"] and "key" not in listed[0] and listed[0]["last_used_at"] is None
    )
    async with app.state.services.store.read() as s:
        stored = await s.api_key(name="crm-export")
    assert stored is not None and crm["key"] not in stored.key_hash and len(stored.key_hash) == 64

    everything = await kw.client.get("/api/v1/conversations", headers=bearer(crm["key"]))
    assert everything.status_code == 200 and len(everything.json()["conversations"]) == 2  # a supervisor's view
    admin_only = await kw.client.get("/api/v1/admin/users", headers=bearer(crm["key"]))
    assert admin_only.status_code == 403 and admin_only.json()["permission"] == "admin"
    entries = await kw.client.get(
        f"/api/v1/conversations/{kw.conversations['alice']}/entries", headers=bearer(crm["key"])
    )
    assert entries.status_code == 403  # no access_conversation_entries

    # Never in a URL: not as a query parameter, not as a stream ticket; no ticket for a key either.
    assert (await kw.client.get(f"/api/v1/conversations?access_token={crm['key']}")).status_code == 401
    assert (await kw.client.get(f"/api/v1/events/poll?ticket={crm['key']}&timeout=0")).status_code == 401
    assert (await kw.client.post("/api/v1/stream-tickets", headers=bearer(crm["key"]))).status_code == 403
    assert (await kw.client.get("/api/v1/conversations", headers=bearer(crm["key"] + "x"))).status_code == 401
    assert (await kw.client.get("/api/v1/conversations", headers=bearer("hlk_nope"))).status_code == 401

    await app.state.services.accounts.api_keys.flush()
    used = (await kw.call("admin", "GET", "/api/v1/admin/api-keys")).json()[0]
    assert used["last_used_at"] is not None

    revoked = await kw.call("admin", "DELETE", f"/api/v1/admin/api-keys/{crm['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = await kw.client.get("/api/v1/conversations", headers=bearer(crm["key"]))
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    assert crm["key"] not in refused.text
    assert (await kw.call("admin", "DELETE", "/api/v1/admin/api-keys/key_nope")).status_code == 404
    duplicate = await kw.call(
        "admin", "POST", "/api/v1/admin/api-keys", {"name": "crm-export", "permissions": ["chat_user"]}
    )
    assert duplicate.status_code == 409
    for who in ("rep", "supervisor", "alice"):
        assert (await kw.call(who, "GET", "/api/v1/admin/api-keys")).status_code == 403
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]  # not the test's client
    assert server_side and not any(crm["key"] in line for line in server_side)  # never logged


async def test_a_key_acting_as_a_user_holds_at_most_that_users_permissions(kw: World) -> None:
    bot = await create_key(
        kw,
        "rep-bot",
        ["chat_user", "chat_rep", "access_conversation_entries", "supervisor"],
        user_id=kw.user_ids["rep"],
    )
    alice = kw.conversations["alice"]
    sent = await kw.client.post(
        f"/api/v1/conversations/{alice}/messages",
        json={"id": "bot-1", "text": "from the key"},
        headers=bearer(bot["key"]),
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["author"]["id"] == kw.user_ids["rep"]
    # supervisor was asked for, but rep does not hold it: the key sees only rep's conversations.
    mine = (await kw.client.get("/api/v1/conversations", headers=bearer(bot["key"]))).json()["conversations"]
    assert [c["id"] for c in mine] == [alice]
    missing = await kw.call(
        "admin", "POST", "/api/v1/admin/api-keys", {"name": "x", "permissions": ["chat_user"], "user_id": "usr_nope"}
    )
    assert missing.status_code == 404
    disabled = await kw.call("admin", "PATCH", f"/api/v1/admin/users/{kw.user_ids['rep']}", {"disabled": True})
    assert disabled.status_code == 200
    assert (await kw.client.get("/api/v1/conversations", headers=bearer(bot["key"]))).status_code == 401


def test_the_cli_creates_lists_and_revokes_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("HELPLINE_SECRET_KEY", SECRET)
    runner = CliRunner()
    created = runner.invoke(
        cli, ["api-keys", "create", "crm", "--permission", "supervisor", "-p", "chat_user", "--database-url", url]
    )
    assert created.exit_code == 0, created.output
    key = created.output.split("key (shown only now): ", 1)[1].strip()
    assert key.startswith("hlk_")
    listed = runner.invoke(cli, ["api-keys", "list", "--database-url", url])
    assert "crm" in listed.output and "active" in listed.output and key not in listed.output
    revoked = runner.invoke(cli, ["api-keys", "revoke", "crm", "--database-url", url])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in runner.invoke(cli, ["api-keys", "list", "--database-url", url]).output
    unknown = runner.invoke(cli, ["api-keys", "create", "x", "-p", "wizard", "--database-url", url])
    assert unknown.exit_code == 2 and "unknown permissions" in unknown.output
    hooks = runner.invoke(
        cli, ["webhooks", "create", "https://crm.example/hook", "--event", "conversation.closed", "--database-url", url]
    )
    assert hooks.exit_code == 0, hooks.output and "whsec_" in hooks.output
    assert "https://crm.example/hook" in runner.invoke(cli, ["webhooks", "list", "--database-url", url]).output
    refused = runner.invoke(cli, ["webhooks", "create", "http://127.0.0.1/", "--event", "*", "--database-url", url])
    assert refused.exit_code == 2 and "non-public" in refused.output


@pytest.fixture
async def two_nodes(postgres_url: str, redis_bus_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Node A in this process, node B a `helpline serve` process: one database, one Redis bus."""
    from tests.conftest import empty_postgres

    await empty_postgres(postgres_url)
    port = free_port()
    env = {
        **os.environ,
        "HELPLINE_SECRET_KEY": SECRET,
        "HELPLINE_DEMO_PASSWORD": "demo-password-123",
        "HELPLINE_DATABASE_URL": postgres_url,
        "HELPLINE_BUS_URL": redis_bus_url,
        "HELPLINE_PASSWORD_TIME_COST": "1",
        "HELPLINE_PASSWORD_MEMORY_KIB": "1024",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "helpline", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node_b = f"http://127.0.0.1:{port}"
    node_a = LiveServer(make_settings(postgres_url, bus_url=redis_bus_url)).start()
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(f"{node_b}/readyz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and process.poll() is None, "node B did not start"
                await asyncio.sleep(0.1)
        yield node_a.url, node_b
    finally:
        node_a.stop()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(150)
async def test_a_key_revoked_on_one_node_is_refused_on_another_within_a_second(two_nodes: tuple[str, str]) -> None:
    node_a, node_b = two_nodes
    async with httpx.AsyncClient() as http:
        login = await http.post(
            f"{node_b}/api/v1/auth/login", json={"username": "admin", "password": "demo-password-123"}
        )
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await http.post(
            f"{node_a}/api/v1/admin/api-keys",
            json={"name": "crm", "permissions": ["chat_user", "supervisor"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        key = bearer(created.json()["key"])
        for _ in range(3):  # node B has checked the key and caches it (for 5 s, unless told otherwise)
            assert (await http.get(f"{node_b}/api/v1/conversations", headers=key)).status_code == 200
        revoked = await http.delete(f"{node_a}/api/v1/admin/api-keys/{created.json()['id']}", headers=admin)
        assert revoked.status_code == 200
        started = time.monotonic()
        while (await http.get(f"{node_b}/api/v1/conversations", headers=key)).status_code == 200:
            assert time.monotonic() - started < 1.0, "node B still accepted the revoked key after a second"
            await asyncio.sleep(0.02)
        assert (await http.get(f"{node_a}/api/v1/conversations", headers=key)).status_code == 401


def test_the_schema_stores_no_key_column() -> None:
    assert "key" not in schema.api_keys.c and "key_hash" in schema.api_keys.c
