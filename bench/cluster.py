"""Several nodes on one PostgreSQL database (issue 16): ``python -m bench.cluster --nodes 1,2,3``.

For each node count N it starts ``helpline serve --workers N`` on a fresh PostgreSQL database (N
processes, each with its own group-commit writer and its own turn at the cross-process append lock,
joined by the Redis bus when N > 1: what N nodes behind a load balancer are, minus the balancer), runs
the ``ramp`` scenario of ``bench/scenarios.py`` (raise the rate until p99 > 100 ms or anything is lost)
and reads what every process's writer did from its log at shutdown (``group commit totals`` in
``helpline/store/commit.py``): batches, writes, and the seconds spent waiting for and holding the
append lock.

The append lock is held from a batch's BEGIN to its unlock, COMMIT and publish included, and no two
processes hold it at once; so whatever the node count, the cluster commits at most
``writes per batch / hold time per batch`` per second. The table prints that ceiling beside the rate
that was sustained, and how busy the lock was (its hold time over the wall time of the run).
Results go to ``bench/out/cluster.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import WorkerPool, raise_nofile
from bench.run import PLANS
from bench.scenarios import SCENARIOS, Context
from bench.server import HelplineServer, HelplineStage

HERE = Path(__file__).resolve().parent
TOTALS = re.compile(r"group commit totals: (.*)$", re.MULTILINE)


def writer_totals(log: str) -> dict[str, float]:
    """The sum, over the log's processes, of each writer's ``group commit totals`` line."""
    summed = {"processes": 0.0, "batches": 0.0, "turns": 0.0, "lock_wait_seconds": 0.0, "lock_hold_seconds": 0.0}
    for line in TOTALS.findall(log):
        summed["processes"] += 1
        for pair in line.split():
            name, _, value = pair.partition("=")
            if name in summed:
                summed[name] += float(value)
    return summed


def cluster_figures(ramp: dict[str, Any], totals: dict[str, float], wall_seconds: float) -> dict[str, Any]:
    batches, turns, hold = totals["batches"], totals["turns"], totals["lock_hold_seconds"]
    per_batch_ms = hold / batches * 1000 if batches else None
    return {
        "max_sustained_rate": ramp["max_sustained_rate"],
        "server_cpu_us_per_message": ramp["server_cpu_us_per_message"],
        "writer_processes": int(totals["processes"]),
        "batches": int(batches),
        "writes": int(turns),
        "writes_per_batch": turns / batches if batches else None,
        "lock_hold_ms_per_batch": per_batch_ms,
        "lock_wait_ms_per_batch": totals["lock_wait_seconds"] / batches * 1000 if batches else None,
        "lock_busy_fraction": hold / wall_seconds if wall_seconds else None,
        # If the lock were held back to back: the most writes per second any number of nodes could commit.
        "lock_ceiling_writes_per_second": turns / hold if hold else None,
    }


async def measure(nodes: int, mode: str, workers: int, workdir: Path) -> dict[str, Any]:
    server = HelplineServer("postgres" if nodes == 1 else f"postgres-w{nodes}", workdir)
    stage = HelplineStage(server)
    pool = WorkerPool(workers)
    await server.start()
    started = time.monotonic()
    try:
        ramp = await SCENARIOS["ramp"](Context(server, stage, pool, PLANS[mode]))
    finally:
        stage.close()
        pool.close()
        await server.stop()  # the writers log their totals as they close
    wall = time.monotonic() - started
    result = cluster_figures(ramp, writer_totals(server.log_path.read_text(errors="replace")), wall)
    result.update(nodes=nodes, mode=mode, wall_seconds=wall, ramp_steps=ramp["steps"])
    return result


def table(results: list[dict[str, Any]]) -> str:
    def number(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [
        "| nodes | sustained msg/s | server CPU µs/msg | writes/batch | lock held ms/batch "
        "| lock waited ms/batch | lock busy | lock ceiling writes/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        busy = r["lock_busy_fraction"]
        lines.append(
            f"| {r['nodes']} | {number(r['max_sustained_rate'])} | {number(r['server_cpu_us_per_message'])} "
            f"| {number(r['writes_per_batch'], 1)} | {number(r['lock_hold_ms_per_batch'], 2)} "
            f"| {number(r['lock_wait_ms_per_batch'], 2)} | {'-' if busy is None else f'{busy:.0%}'} "
            f"| {number(r['lock_ceiling_writes_per_second'])} |"
        )
    return "\n".join(lines)


async def run(node_counts: list[int], mode: str, workers: int) -> list[dict[str, Any]]:
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="helpline-cluster-"))
    try:
        return [await measure(n, mode, workers, workdir / f"n{n}") for n in node_counts]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--nodes", default="1,2,3", help="comma-separated node counts")
    parser.add_argument("--mode", choices=sorted(PLANS), default="quick", help="the ramp's sizes (bench/run.py)")
    parser.add_argument("--workers", type=int, default=4, help="load generator processes")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "cluster.json")
    args = parser.parse_args(argv)
    import uvloop

    results = uvloop.run(run([int(n) for n in args.nodes.split(",") if n], args.mode, args.workers))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
