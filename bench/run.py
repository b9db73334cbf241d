"""Run the benchmark: ``python -m bench.run --quick`` (~3 min) or ``--full`` (~20 min).

For each target (Helpline on SQLite, Helpline on PostgreSQL, nchan) it starts the server as a
subprocess, runs the scenarios in order, writes one JSON per scenario under ``bench/out/<mode>/``,
and finally prints the tables with Helpline/nchan ratios and draws the charts (``bench/report.py``).
``--smoke`` is the tiny version the test suite runs (``tests/test_bench_smoke.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import nchan, report
from bench.loadgen import WorkerPool, raise_nofile
from bench.scenarios import SCENARIOS, Context, Plan
from bench.server import HelplineServer, HelplineStage

HERE = Path(__file__).resolve().parent

# Geometric steps: the first failure says the capacity within ~25-50%, whatever the server.
RAMP_FULL = [
    10,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    4500,
    6000,
    8000,
    10000,
    12000,
    16000,
    20000,
]
RAMP_QUICK = [10, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800]
PLANS = {
    "smoke": Plan(
        idle_steps=[40, 80],
        idle_per_identity=4,
        chat_conversations=8,
        chat_per_rep=4,
        chat_rates=[60],
        chat_seconds=1.5,
        ramp_rates=[40, 80],
        ramp_seconds=1.0,
        resume_conversations=8,
        resume_rate=40,
        resume_seconds=2.5,
        resume_drop_after=0.8,
        resume_down_for=0.4,
        profile_rate=0,
        profile_seconds=0,
        publish_pool=4,
        drain_seconds=3.0,
    ),
    "quick": Plan(
        idle_steps=[1000, 3000],
        idle_per_identity=10,
        chat_conversations=100,
        chat_per_rep=5,
        chat_rates=[200, 1000],
        chat_seconds=4,
        ramp_rates=RAMP_QUICK,
        ramp_seconds=3,
        resume_conversations=100,
        resume_rate=50,
        resume_seconds=6,
        resume_drop_after=2,
        resume_down_for=1,
        profile_rate=1000,
        profile_seconds=5,
    ),
    "full": Plan(
        # 19,800: the hard descriptor limit here is 20,000, and the server keeps 128 of its own for the
        # database, Redis and logs (edge/server.py DESCRIPTORS_KEPT): it accepts at most 19,872.
        idle_steps=[1000, 5000, 10000, 19800],
        idle_per_identity=10,
        chat_conversations=1000,  # each with a customer and a rep streaming (issue 5)
        chat_per_rep=5,
        chat_rates=[200, 1000, 3000],
        chat_seconds=10,
        ramp_rates=RAMP_FULL,
        ramp_seconds=5,
        resume_conversations=8334,  # + 1,667 reps at 5 conversations each: 10,001 streams (issue 5)
        resume_rate=80,
        resume_seconds=12,
        resume_drop_after=4,
        resume_down_for=2,
        profile_rate=1000,
        profile_seconds=10,
    ),
}
TARGETS = ("sqlite", "postgres", "nchan")
MORE_TARGETS = ("sqlite-w2", "postgres-w2")  # helpline serve --workers 2 with the Redis bus; by name only


def _keep_logs(workdir: Path, folder: Path) -> None:
    """The servers' own logs (uvicorn's, nginx's error.log) go next to the JSON, for post-mortems."""
    folder.mkdir(parents=True, exist_ok=True)
    for log in [*workdir.glob("*.log"), *workdir.glob("nchan/error.log")]:
        shutil.copy(log, folder / (log.name if log.parent == workdir else f"nchan-{log.name}"))


def _save(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")


def make_target(name: str, workdir: Path) -> tuple[Any, Any]:
    if name == "nchan":
        server = nchan.NchanServer(workdir)
        return server, nchan.NchanStage(server)
    helpline = HelplineServer(name, workdir)
    return helpline, HelplineStage(helpline)


async def run(
    mode: str,
    targets: list[str],
    scenarios: list[str],
    out: Path,
    *,
    workers: int = 4,
    profiles: Path | None = None,
    plots: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``scenarios`` against ``targets``; return ``{target: {scenario: result}}`` (also written as JSON)."""
    plan = PLANS[mode]
    raise_nofile()
    results: dict[str, dict[str, Any]] = {}
    pool = WorkerPool(workers)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-bench-"))
    try:
        for name in targets:
            if name == "nchan" and not nchan.available():
                print("nchan is not installed (bench/install_nchan.sh): skipped", flush=True)
                continue
            server, stage = make_target(name, workdir)
            await server.start()
            print(f"{server.name} listening on {server.host}:{server.port} (pid {server.pids[0]})", flush=True)
            context = Context(server, stage, pool, plan, profiles if name != "nchan" else None)
            results[server.name] = {}
            try:
                for scenario in scenarios:
                    started = time.monotonic()
                    result = await SCENARIOS[scenario](context)
                    result["elapsed_seconds"] = time.monotonic() - started
                    result["target"], result["scenario"], result["mode"] = server.name, scenario, mode
                    results[server.name][scenario] = result
                    _save(out / f"{server.name}-{scenario}.json", result)
            finally:
                stage.close()
                await server.stop()
    finally:
        pool.close()
        _keep_logs(workdir, out / "logs")
        shutil.rmtree(workdir, ignore_errors=True)
    report.write(results, out, plan, plots)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick", help="~3 minutes")
    size.add_argument("--full", dest="mode", action="store_const", const="full", help="~20 minutes")
    size.add_argument("--smoke", dest="mode", action="store_const", const="smoke", help="seconds; for tests")
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated: sqlite,postgres,nchan (default), sqlite-w2,postgres-w2 (2 worker processes)",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: idle,chat,ramp,resume")
    parser.add_argument("--workers", type=int, default=4, help="load generator processes")
    parser.add_argument("--out", type=Path, help="JSON folder (default bench/out/<mode>)")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument("--no-plots", action="store_true", help="leave bench/plots alone (partial or trial runs)")
    args = parser.parse_args(argv)
    mode = args.mode or "quick"
    out = args.out or HERE / "out" / mode
    profiles = None if args.no_profile or mode == "smoke" else HERE / "profiles"
    plots = None if args.no_plots or mode == "smoke" else HERE / "plots"
    out.mkdir(parents=True, exist_ok=True)
    targets = [t for t in args.targets.split(",") if t]
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [t for t in targets if t not in TARGETS + MORE_TARGETS] + [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown target or scenario: {', '.join(unknown)}")
    import uvloop

    uvloop.run(run(mode, targets, scenarios, out, workers=args.workers, profiles=profiles, plots=plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
