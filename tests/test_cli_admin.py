"""CLI parity for what operators do (docs/protocol.md "Command line"): users list|update|disable, queues list,
deployments list|update, against the database a running server uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from helpline import cli
from tests.conftest import SECRET, LiveServer, make_settings

pytestmark = pytest.mark.timeout(120)


class Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def helpline(url: str, *args: str, stdin: str = "") -> Done:
    """The command, in this process (a process per command costs seconds of imports on a loaded machine;
    tests/test_cli.py runs it as a real process)."""
    env = {"HELPLINE_DATABASE_URL": url, "HELPLINE_SECRET_KEY": SECRET, "HELPLINE_BUS_URL": "memory://"}
    result = CliRunner().invoke(cli.app, list(args), input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def ok(url: str, *args: str, stdin: str = "") -> str:
    done = helpline(url, *args, stdin=stdin)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def listed(url: str, what: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ok(url, what, "list", "--json"))
    return rows


def test_operators_manage_users_queues_and_deployments_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    ok(url, "db", "upgrade")
    ok(url, "queues", "create", "support")
    ok(url, "queues", "create", "billing")
    ok(url, "deployments", "create", "shop", "--queue", "support", "--allowed-origin", "https://shop.example")
    ok(url, "users", "create", "riley", "-p", "chat_user", "-p", "chat_rep", stdin="a-long-password\n")

    assert [q["name"] for q in listed(url, "queues")] == ["billing", "support"]
    table = ok(url, "queues", "list")
    assert table.splitlines()[0].split() == ["name", "id", "created_at"]

    [riley] = listed(url, "users")
    assert (riley["username"], riley["permissions"], riley["capacity"], riley["queues"], riley["disabled"]) == (
        "riley",
        ["chat_rep", "chat_user"],
        3,
        [],
        False,
    )
    updated = ok(
        url,
        "users",
        "update",
        "riley",
        *("--permission", "chat_user", "--permission", "chat_rep", "--permission", "access_conversation_entries"),
        *("--capacity", "5", "--queue", "billing", "--queue", "support", "--display-name", "Riley R."),
    )
    assert "capacity 5" in updated
    [riley] = listed(url, "users")
    assert riley["permissions"] == ["access_conversation_entries", "chat_rep", "chat_user"]
    assert (riley["capacity"], sorted(riley["queues"]), riley["display_name"]) == (
        5,
        ["billing", "support"],
        "Riley R.",
    )
    ok(url, "users", "update", "riley", "--no-queues")
    assert listed(url, "users")[0]["queues"] == []
    lines = ok(url, "users", "list").splitlines()
    assert lines[0].split()[:3] == ["username", "display_name", "permissions"]
    assert lines[1].startswith("riley")

    [shop] = listed(url, "deployments")
    assert (shop["key"], shop["queue"], shop["allowed_origins"]) == ("shop", "support", ["https://shop.example"])

    # A running server on the same database sees what the commands change.
    server = LiveServer(make_settings(url)).start()
    try:
        login = {"username": "riley", "password": "a-long-password"}
        assert httpx.post(f"{server.url}/api/v1/auth/login", json=login, timeout=10).status_code == 200

        def session(origin: str) -> int:
            return httpx.post(
                f"{server.url}/api/v1/deployments/shop/sessions", json={}, headers={"Origin": origin}, timeout=10
            ).status_code

        assert session("https://new.example") == 403
        ok(
            url,
            "deployments",
            "update",
            "shop",
            *("--allowed-origin", "https://new.example", "--allowed-origin", "http://localhost:8080"),
            *("--queue", "billing"),
        )
        [shop] = listed(url, "deployments")
        assert (shop["queue"], shop["allowed_origins"]) == ("billing", ["https://new.example", "http://localhost:8080"])
        assert session("https://new.example") == 201
        assert session("https://shop.example") == 403

        disabled = ok(url, "users", "disable", "riley")
        assert "disabled user riley" in disabled
        refused = httpx.post(f"{server.url}/api/v1/auth/login", json=login, timeout=10)
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        ok(url, "users", "update", "riley", "--enable")
        assert httpx.post(f"{server.url}/api/v1/auth/login", json=login, timeout=10).status_code == 200
    finally:
        server.stop()


def test_the_commands_refuse_what_is_wrong_with_a_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    ok(url, "queues", "create", "support")
    ok(url, "deployments", "create", "shop", "--queue", "support", "--allowed-origin", "https://shop.example")
    ok(url, "users", "create", "riley", "-p", "chat_user", stdin="a-long-password\n")
    cases = [
        (["users", "update", "nobody", "--capacity", "2"], "no user named 'nobody'"),
        (["users", "update", "riley", "--permission", "root"], "unknown permissions: root"),
        (["users", "update", "riley", "--queue", "nope"], "no queue named 'nope'"),
        (["users", "update", "riley", "--queue", "support", "--no-queues"], "contradict"),
        (["users", "disable", "nobody"], "no user named"),
        (["deployments", "update", "nope", "--queue", "support"], "no deployment with key 'nope'"),
        (["deployments", "update", "shop", "--allowed-origin", "https://shop.example/path"], "is not an origin"),
        (["deployments", "update", "shop", "--queue", "nope"], "no queue named 'nope'"),
    ]
    for args, reason in cases:
        done = helpline(url, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert reason in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    [shop] = listed(url, "deployments")
    assert shop["allowed_origins"] == ["https://shop.example"]
