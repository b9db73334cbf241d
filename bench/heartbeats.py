"""What heartbeats cost: ``python -m bench.heartbeats --streams 10000 --intervals 3600,15,5 --hold 30``.

(3600 s: no heartbeat within the window, the idle server's own cost with that many streams open.)

For each interval, a Helpline server on SQLite (``HELPLINE_HEARTBEAT_SECONDS``, heartbeat events on, as
shipped) gets ``--streams`` idle customer streams from the load generator; then, with nothing else
happening, we measure over ``--hold`` seconds the server's CPU (user + system, all its processes) and
the bytes the streams received (HTTP chunk framing included; TCP/IP headers not). The result is
written to ``bench/out/heartbeats.json`` (``--out``) and printed as the table of bench/RESULTS.md.
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

from bench.loadgen import WorkerPool, raise_nofile
from bench.server import HelplineServer, HelplineStage

HERE = Path(__file__).resolve().parent


async def measure(interval: float, streams: int, hold: float, pool: WorkerPool, workdir: Path) -> dict[str, Any]:
    server = HelplineServer("sqlite", workdir, env={"HELPLINE_HEARTBEAT_SECONDS": f"{interval:g}"})
    await server.start()
    stage = HelplineStage(server)
    try:
        specs = await stage.idle_streams(streams, 10)
        await pool.call("configure", {"host": server.host, "port": server.port, "streams": [], "conversations": []})
        workers = len(pool)
        await pool.call("add_streams", [{"streams": specs[w::workers]} for w in range(workers)])
        opened = await pool.call("open_streams", {"concurrency": 250})
        failed = sum(r["failed"] for r in opened)
        await asyncio.sleep(3.0 if interval > hold else max(3.0, 2 * interval))  # into the steady state
        before = await pool.call("stream_bytes", {})
        cpu, started = server.cpu_seconds(), time.monotonic()
        await asyncio.sleep(hold)
        seconds = time.monotonic() - started
        server_cpu = server.cpu_seconds() - cpu
        after = await pool.call("stream_bytes", {})
        received = sum(r["bytes"] for r in after) - sum(r["bytes"] for r in before)
        open_now = sum(r["streams"] for r in after)
        result = {
            "heartbeat_seconds": interval,
            "streams": open_now,
            "failed": failed,
            "seconds": seconds,
            "server_cpu_percent": 100 * server_cpu / seconds,
            "server_cpu_us_per_heartbeat": 1e6 * server_cpu / max(1.0, open_now * seconds / interval),
            "bytes_per_second": received / seconds,
            "bytes_per_stream_per_minute": 60 * received / seconds / max(1, open_now),
            "rss_kb": server.rss_kb(),
        }
        print(
            f"  heartbeat {interval:g} s: {open_now} idle streams, server CPU {result['server_cpu_percent']:.1f} % "
            f"of a core, {result['bytes_per_second'] / 1024:.0f} KiB/s "
            f"({result['bytes_per_stream_per_minute']:.0f} B per stream per minute)",
            flush=True,
        )
        await pool.call("close_streams", {})
        return result
    finally:
        stage.close()
        await server.stop()


async def run(streams: int, intervals: list[float], hold: float, workers: int) -> list[dict[str, Any]]:
    raise_nofile()
    pool = WorkerPool(workers)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-heartbeats-"))
    try:
        return [await measure(interval, streams, hold, pool, workdir) for interval in intervals]
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.heartbeats", description=__doc__)
    parser.add_argument("--streams", type=int, default=20000)
    parser.add_argument("--intervals", default="15,5", help="comma-separated heartbeat intervals, seconds")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds measured per interval")
    parser.add_argument("--workers", type=int, default=4, help="load generator processes")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "heartbeats.json", help="the JSON written")
    args = parser.parse_args(argv)
    intervals = [float(value) for value in args.intervals.split(",") if value]
    import uvloop

    results = uvloop.run(run(args.streams, intervals, args.hold, args.workers))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| heartbeat | idle streams | server CPU (% of a core) | CPU per heartbeat | bytes/s | B/stream/min |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['heartbeat_seconds']:g} s | {r['streams']:,} | {r['server_cpu_percent']:.1f} % | "
            f"{r['server_cpu_us_per_heartbeat']:.0f} µs | {r['bytes_per_second'] / 1024:.0f} KiB/s | "
            f"{r['bytes_per_stream_per_minute']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
