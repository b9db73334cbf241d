"""Router cost and queue size (issue 16): ``python -m bench.queued --sizes 0,1000,10000``.

One Helpline server per backend (``--backends sqlite,postgres``), no rep online and no stream open.
The queue of the demo deployment is filled, through the API, to each size in turn; at each size, once
the router has told the newest customer its position, we measure

- the idle server's CPU (user + system, all its processes) over ``--hold`` seconds: what the router's
  ticks cost with that many conversations waiting and nothing happening;
- ``--pairs`` customer sessions, each with a conversation, created one after the other: the wall time of
  a pair as the client sees it, and the server CPU per pair, the router's reaction included (measured
  until the last new customer has been told its position, the idle CPU of that window subtracted).

Every customer must be told the position it was queued at (the count before it, plus one): a wrong
position or none within ``--settle`` seconds fails the run, so the smoke version
(``tests/test_bench_smoke.py``) checks the routing too. Results go to ``bench/out/queued.json``
(``--out``) and are printed as the table of bench/RESULTS.md ("Router cost and queue size").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server import HelplineServer, HelplineStage

HERE = Path(__file__).resolve().parent


class QueueStage:
    """Customers with a queued conversation each, and a check that each was told its position."""

    def __init__(self, stage: HelplineStage) -> None:
        self.stage = stage
        self.api = stage.api
        self.queued = 0

    async def pair(self) -> tuple[str, str]:
        """A new guest session and its conversation: (access token, the session's last_event_id)."""
        session = await self.api.call("POST", "/api/v1/deployments/demo/sessions", {})
        token, after = session["access_token"], session["last_event_id"]
        await self.api.call("POST", "/api/v1/conversations", {}, token=token)
        return token, after

    async def warm_up(self, count: int) -> None:
        """Pairs created and closed again: compiled statements and caches warm, the queue left empty."""
        for _ in range(count):
            session = await self.api.call("POST", "/api/v1/deployments/demo/sessions", {})
            token = session["access_token"]
            conversation = await self.api.call("POST", "/api/v1/conversations", {}, token=token)
            await self.api.call("POST", f"/api/v1/conversations/{conversation['id']}/close", {}, token=token)

    async def fill(self, count: int, concurrency: int = 16) -> tuple[str, str] | None:
        """``count`` more queued conversations, created concurrently; the last one's customer."""
        if count <= 0:
            return None
        answers = await self.api.gather([self.pair() for _ in range(count)], concurrency=concurrency)
        self.queued += count
        return answers[-1]

    async def told(self, customer: tuple[str, str], settle: float, *, exact: int | None = None) -> int:
        """Wait until ``customer`` was told a position (exactly ``exact``, if given); return it."""
        token, after = customer
        deadline = time.monotonic() + settle
        position = None
        while time.monotonic() < deadline:
            wait = max(1, min(5, int(deadline - time.monotonic())))
            page = await self.api.call("GET", f"/api/v1/events/poll?after={after}&timeout={wait}", token=token)
            for event in page["events"]:
                if event["type"] == "conversation.routing" and event.get("position") is not None:
                    position = event["position"]
            after = page["last_event_id"]
            if position is not None and (exact is None or position == exact):
                return int(position)
        raise RuntimeError(f"a queued customer was not told position {exact} within {settle:g} s (last: {position})")


async def measure(
    backend: str, sizes: list[int], hold: float, pairs: int, settle: float, workdir: Path
) -> list[dict[str, Any]]:
    server = HelplineServer(backend, workdir)
    await server.start()
    stage = HelplineStage(server)
    queue = QueueStage(stage)
    results = []
    try:
        await queue.warm_up(20)
        for size in sizes:
            started, filled = time.monotonic(), size - queue.queued
            last = await queue.fill(filled)
            fill_seconds = time.monotonic() - started
            if last is not None:  # created concurrently: the last answer need not be the last queued
                await queue.told(last, settle + size / 100)
            await asyncio.sleep(1.0)  # the router's reaction to the last of the fill is over
            queued = queue.queued
            cpu, started = server.cpu_seconds(), time.monotonic()
            await asyncio.sleep(hold)
            idle_seconds = time.monotonic() - started
            idle_cpu = server.cpu_seconds() - cpu
            idle_rate = idle_cpu / idle_seconds

            cpu, started = server.cpu_seconds(), time.monotonic()
            customer = None
            for _ in range(pairs):
                customer = await queue.pair()
            created_seconds = time.monotonic() - started
            queue.queued += pairs
            assert customer is not None
            await queue.told(customer, settle, exact=queue.queued)
            window = time.monotonic() - started
            pair_cpu = server.cpu_seconds() - cpu - idle_rate * window
            result = {
                "backend": backend,
                "queued": queued,
                "filled": max(0, filled),
                "fill_pairs_per_second": filled / fill_seconds if filled > 0 else None,
                "idle_seconds": idle_seconds,
                "idle_cpu_percent": 100 * idle_rate,
                "pairs": pairs,
                "pair_wall_ms": 1e3 * created_seconds / pairs,
                "pair_cpu_ms": 1e3 * max(0.0, pair_cpu) / pairs,
                "rss_kb": server.rss_kb(),
            }
            results.append(result)
            print(
                f"  {server.name}: {queued:,} queued: idle CPU {result['idle_cpu_percent']:.1f} % of a core, "
                f"session + conversation {result['pair_wall_ms']:.1f} ms wall, "
                f"{result['pair_cpu_ms']:.1f} ms server CPU",
                flush=True,
            )
        return results
    finally:
        stage.close()
        await server.stop()


async def run(backends: list[str], sizes: list[int], hold: float, pairs: int, settle: float) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="helpline-queued-"))
    try:
        results = []
        for backend in backends:
            results += await measure(backend, sizes, hold, pairs, settle, workdir)
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | queued | idle server CPU (% of a core) | session + conversation, wall | server CPU per pair |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['queued']:,} | {r['idle_cpu_percent']:.1f} % | {r['pair_wall_ms']:.1f} ms | "
            f"{r['pair_cpu_ms']:.1f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queued", description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite,postgres")
    parser.add_argument("--sizes", default="0,1000,10000", help="comma-separated queue sizes, ascending")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds of idle CPU measured per size")
    parser.add_argument("--pairs", type=int, default=100, help="sessions + conversations created per size")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds allowed to tell a position")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "queued.json", help="the JSON written")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    sizes = [int(value) for value in args.sizes.split(",") if value]
    if any(b not in ("sqlite", "postgres") for b in backends) or sizes != sorted(sizes) or args.pairs < 1:
        parser.error("backends are sqlite and postgres; sizes ascend; at least one pair")
    import uvloop

    results = uvloop.run(run(backends, sizes, args.hold, args.pairs, args.settle))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
