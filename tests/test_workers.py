"""``helpline serve --workers N``: several processes behind one port, joined by the Redis bus.

The kernel hands each new connection to whichever worker accepts it first, so these tests find out
which process serves each connection (from ``/proc``) instead of hoping that both were used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, free_port
from tests.streams import StreamReader, messages, opened

pytestmark = [pytest.mark.timeout(180), pytest.mark.redis]
HELPLINE = [sys.executable, "-m", "helpline"]
DEMO_PASSWORD = "demo-password-123"


def serving_pid(port: int, client_port: int, candidates: list[int]) -> int:
    """The worker holding the server side of the connection from ``client_port``."""
    wanted = f"0100007F:{port:04X} 0100007F:{client_port:04X}"
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if f"{fields[1]} {fields[2]}" == wanted:
            inode = fields[9]
    assert inode, f"no server socket for client port {client_port}"
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds socket {inode}")


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


@pytest.fixture
def served(database_url: str, redis_bus_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {
        **os.environ,
        "HELPLINE_SECRET_KEY": SECRET,
        "HELPLINE_DEMO_PASSWORD": DEMO_PASSWORD,
        "HELPLINE_DATABASE_URL": database_url,
        "HELPLINE_BUS_URL": redis_bus_url,
    }
    if not database_url.startswith("sqlite"):
        subprocess.run([*HELPLINE, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    server = subprocess.Popen(
        [*HELPLINE, "serve", "--demo", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120  # two spawned workers take ~50 s on a loaded 2-core machine
        while True:  # both workers up: each answers on its own connections
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200 and (
                    len([p for p in children(server.pid) if _is_worker(p)]) == 2
                ):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.2)
        yield server, port
    finally:
        workers: list[int] = []
        with contextlib.suppress(OSError):  # the supervisor may be gone already
            workers = children(server.pid)
        if server.poll() is None:
            server.kill()
        for pid in workers:  # a killed supervisor leaves its spawned workers behind: stop exactly those
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        output, _ = server.communicate(timeout=20)
        print(output)


def _is_worker(pid: int) -> bool:
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_several_workers_need_a_shared_bus(tmp_path: Path) -> None:
    env = {**os.environ, "HELPLINE_SECRET_KEY": SECRET, "HELPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run(
        [*HELPLINE, "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "needs a shared bus (--bus-url redis://" in result.stderr


async def test_every_stream_gets_every_message_whichever_worker_holds_it_or_took_the_message(
    served: tuple[subprocess.Popen[str], int],
) -> None:
    server, port = served
    base = f"http://127.0.0.1:{port}"
    workers = [p for p in children(server.pid) if _is_worker(p)]
    async with httpx.AsyncClient(base_url=base, timeout=10) as http, AsyncExitStack() as stack:
        login = await http.post("/api/v1/auth/login", json={"username": "supervisor", "password": DEMO_PASSWORD})
        supervisor = login.json()["access_token"]
        session = (await http.post("/api/v1/deployments/demo/sessions", json={"display_name": "Ada"})).json()
        customer = session["access_token"]
        auth = {"Authorization": f"Bearer {customer}"}
        conversation = (await http.post("/api/v1/conversations", json={}, headers=auth)).json()["id"]

        # Supervisor streams (they see everything), each on its own connection, until both workers hold
        # some. Each worker admits 5 streams per identity, so a worker that got 5 already says 429.
        streams: dict[int, list[StreamReader]] = {pid: [] for pid in workers}
        for _ in range(9):
            if all(streams.values()) and sum(map(len, streams.values())) >= 4:
                break
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=None))
            )
            response = await stack.enter_async_context(
                client.stream("GET", "/api/v1/events", headers={"Authorization": f"Bearer {supervisor}"})
            )
            if response.status_code == 429:
                continue
            assert response.status_code == 200
            local_port = response.extensions["network_stream"].get_extra_info("socket").getsockname()[1]
            reader = StreamReader(response)
            await opened(reader)
            streams[serving_pid(port, local_port, workers)].append(reader)
        assert all(streams.values()), f"the kernel gave every stream to one worker: {streams}"

        # Messages, each on a new connection, until both workers took some.
        took: dict[int, int] = {pid: 0 for pid in workers}
        sent: list[str] = []
        for n in range(60):
            if len(sent) >= 20 and all(took.values()):
                break
            async with httpx.AsyncClient(base_url=base, timeout=10) as fresh:
                async with fresh.stream(
                    "POST",
                    f"/api/v1/conversations/{conversation}/messages",
                    json={"id": f"m{n}", "text": f"m{n}"},
                    headers=auth,
                ) as answer:
                    local_port = answer.extensions["network_stream"].get_extra_info("socket").getsockname()[1]
                    took[serving_pid(port, local_port, workers)] += 1
                    await answer.aread()
                    assert answer.status_code == 201, answer.text
            sent.append(f"m{n}")
        assert all(took.values()), f"one worker took every message: {took}"

        for held in streams.values():
            for reader in held:
                events = await reader.until(
                    lambda e: e.event == "conversation.message" and e.json()["text"] == sent[-1], timeout=10
                )
                texts = [m["text"] for m in messages(events)]
                assert texts == sent  # every one, once, in the order they were stored
                ids = [int(e.id) for e in events if e.event == "conversation.message"]
                assert ids == sorted(ids)


async def test_sigterm_stops_every_worker_gracefully(served: tuple[subprocess.Popen[str], int]) -> None:
    server, port = served
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        customer = (await http.post("/api/v1/deployments/demo/sessions", json={})).json()["access_token"]
    async with AsyncExitStack() as stack:
        readers = []
        for _ in range(4):  # each worker admits 5 per identity
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=None))
            )
            response = await stack.enter_async_context(
                client.stream("GET", "/api/v1/events", headers={"Authorization": f"Bearer {customer}"})
            )
            reader = StreamReader(response)
            await opened(reader)
            readers.append(reader)
        server.send_signal(signal.SIGTERM)
        endings = await asyncio.gather(*(reader.drain_to_end(timeout=15) for reader in readers))
    assert all(events[-1:] and events[-1].event == "stream.reconnect" for events in endings)
    assert server.wait(timeout=40) == 0
    assert not [p for p in _all_pids() if _is_worker(p) and _parent(p) == server.pid]


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0
