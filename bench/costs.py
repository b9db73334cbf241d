"""Server CPU per request, endpoint by endpoint: where a message's cost comes from.

``python -m bench.costs [--backend sqlite|postgres]`` sends requests one at a time over one keep-alive
connection (no concurrency, so no queueing) and divides the server's CPU time by the count. Comparing
``/healthz`` (the framework's floor), an authenticated read, a typing indicator (auth + read + bus, no
write) and a message (the full write path) splits the cost of a message into its layers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server import HelplineServer, HelplineStage


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
        probes: dict[str, Any] = {
            "GET /healthz": lambda i: api.call("GET", "/healthz"),
            "GET conversation (auth + read)": lambda i: api.call("GET", conversation_path, token=token),
            "POST typing (auth + read + bus)": lambda i: api.call(
                "POST", f"{conversation_path}/typing", {"state": "started"}, token=token, expect=(204,)
            ),
            "POST message (auth + write + bus)": lambda i: api.call(
                "POST", path, {"id": f"cost{i}", "text": "x"}, token=token, expect=(201,)
            ),
        }
        results = {}
        for name, probe in probes.items():
            for i in range(20):  # warm caches (SQLAlchemy's compiled statements, pydantic validators)
                await probe(-i - 1)
            cpu, started = server.cpu_seconds(), time.monotonic()
            for i in range(count):
                await probe(i)
            wall = time.monotonic() - started
            used = server.cpu_seconds() - cpu
            results[name] = {"server_cpu_us": 1e6 * used / count, "wall_us": 1e6 * wall / count}
            print(f"{backend:8} {name:36} server CPU {1e6 * used / count:7.0f} µs   wall {1e6 * wall / count:7.0f} µs")
        return results
    finally:
        stage.close()
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.costs", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import uvloop

    results = {b: uvloop.run(measure(b, args.count)) for b in args.backend or ["sqlite", "postgres"]}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
