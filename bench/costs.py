"""Server CPU per request, endpoint by endpoint: where a message's cost comes from.

``python -m bench.costs [--backend sqlite|postgres]`` sends requests one at a time over one keep-alive
connection (no concurrency, so no queueing) and divides the server's CPU time by the count. Comparing
``/healthz`` (the framework's floor), an authenticated read, a typing indicator (auth + read + bus, no
write) and a message (the full write path) splits the cost of a message into its layers; the bare
raw-ASGI app of ``bench/floor.py`` on the same uvicorn shows what no Python server avoids. Opening a
stream (a new connection, ``GET /api/v1/events`` resuming 20 events back, read up to the replayed
events, then closed) is what a resume storm pays per client, for a customer and for a rep (whose
stream also restores its presence).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import floor
from bench.api import Api
from bench.procstat import cpu_seconds
from bench.server import HelplineServer, HelplineStage, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


async def measure(backend: str, count: int) -> dict[str, dict[str, float]]:
    server = HelplineServer(backend, Path(tempfile.mkdtemp(prefix="helpline-costs-")))
    await server.start()
    stage = HelplineStage(server)
    try:
        world = (await stage.chat_world(1, 1, 1))[0]
        conversation = world["conversations"][0]
        head = conversation["publish"][0]
        path = head.split(" ", 2)[1]
        conversation_path = path.removesuffix("/messages")
        token = head.split("Authorization: Bearer ", 1)[1].split("\r\n", 1)[0]
        api = stage.api
        streams = world["streams"]
        customer_stream = streams[world["conversations"][0]["streams"][0]]
        rep_stream = streams[world["conversations"][0]["streams"][1]]
        probes: dict[str, Any] = {
            "GET /healthz": lambda i: api.call("GET", "/healthz"),
            "GET conversation (auth + read)": lambda i: api.call("GET", conversation_path, token=token),
            "POST typing (auth + read + bus)": lambda i: api.call(
                "POST", f"{conversation_path}/typing", {"state": "started"}, token=token, expect=(204,)
            ),
            "POST message (auth + write + bus)": lambda i: api.call(
                "POST", path, {"id": f"cost{i}", "text": "x"}, token=token, expect=(201,)
            ),
            "open a stream, customer (auth + replay)": lambda i: open_stream(server, customer_stream, resume),
            "open a stream, rep (auth + presence + replay)": lambda i: open_stream(server, rep_stream, resume),
        }
        results = {}
        resume = 0
        for name, probe in probes.items():
            if name.startswith("open a stream"):
                resume = max(0, await last_event_id(server, customer_stream) - 40)  # 20 messages ago
            for i in range(20):  # warm caches (SQLAlchemy's compiled statements, pydantic validators)
                await probe(-i - 1)
            cpu, started = server.cpu_seconds(), time.monotonic()
            for i in range(count):
                await probe(i)
            wall = time.monotonic() - started
            used = server.cpu_seconds() - cpu
            results[name] = {"server_cpu_us": 1e6 * used / count, "wall_us": 1e6 * wall / count}
            print(f"{backend:8} {name:46} server CPU {1e6 * used / count:7.0f} µs   wall {1e6 * wall / count:7.0f} µs")
        return results
    finally:
        stage.close()
        await server.stop()


async def last_event_id(server: HelplineServer, stream: dict[str, Any]) -> int:
    opening = await read_stream_opening(server, stream, None)
    return int(opening.split(b"\nevent: stream.open\n", 1)[0].rsplit(b"id: ", 1)[1])


async def open_stream(server: HelplineServer, stream: dict[str, Any], resume: int) -> None:
    opening = await read_stream_opening(server, stream, resume)
    assert opening.count(b"event: conversation.message") >= 10, opening[-500:]


async def read_stream_opening(server: HelplineServer, stream: dict[str, Any], resume: int | None) -> bytes:
    """Open one stream on a new connection, read its first write (headers, padding, stream.open and the
    replay go out together), and close it."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        headers = "".join(f"{k}: {v}\r\n" for k, v in stream["headers"].items())
        if resume is not None:
            headers += f"Last-Event-ID: {resume}\r\n"
        path = stream["path"].split("?", 1)[0]
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode())
        received = b""
        # uvicorn frames the stream in chunks: the first write ends with a blank line, then the chunk's CRLF
        while b"event: stream.open" not in received or not received.endswith(b"\n\n\r\n"):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                raise RuntimeError(f"stream closed early: {received[:300]!r}")
            received += chunk
        return received
    finally:
        writer.close()


async def measure_floor(count: int) -> dict[str, dict[str, float]]:
    """``GET /`` on bench/floor.py under uvicorn with Helpline's loop and parser, access log off: over one
    keep-alive connection (what a message pays), and on a new connection each time (what a stream open
    pays before the stream does anything)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--port", str(port), "--loop", "uvloop"]
    command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    process = await asyncio.to_thread(
        subprocess.Popen, command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api = Api("127.0.0.1", port, connections=1)

    async def on_a_new_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        received = b""
        while not received.endswith(floor.BODY):
            received += await asyncio.wait_for(reader.read(65536), 10)
        writer.close()

    probes: dict[str, Any] = {
        "bare raw-ASGI app on uvicorn (no Helpline)": lambda: api.call("GET", "/"),
        "the same, on a new connection each time": on_a_new_connection,
    }
    results = {}
    try:
        await asyncio.to_thread(wait_for_port, port, process)
        for name, probe in probes.items():
            for _ in range(20):
                await probe()
            cpu, started = cpu_seconds([process.pid]), time.monotonic()
            for _ in range(count):
                await probe()
            used, wall = cpu_seconds([process.pid]) - cpu, time.monotonic() - started
            print(f"{'floor':8} {name:46} server CPU {1e6 * used / count:7.0f} µs   wall {1e6 * wall / count:7.0f} µs")
            results[name] = {"server_cpu_us": 1e6 * used / count, "wall_us": 1e6 * wall / count}
        return results
    finally:
        api.close()
        process.terminate()
        await asyncio.to_thread(process.wait, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.costs", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import uvloop

    results: dict[str, Any] = {"floor": uvloop.run(measure_floor(args.count))}
    results.update({b: uvloop.run(measure(b, args.count)) for b in args.backend or ["sqlite", "postgres"]})
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
