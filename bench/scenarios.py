"""The four scenarios of issue 5, each a function from a running target to a JSON-ready dict.

Every scenario drives the target through a *stage* (``HelplineStage`` or ``NchanStage``), which
translates "N conversations, each with a customer and a rep streaming" into that server's requests, and
a :class:`~bench.loadgen.WorkerPool`, which produces the load. So Helpline and nchan get the same shape
of load, and the figures differ only by the server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.loadgen import WorkerPool
from bench.profiling import Profiler


class Server(Protocol):
    name: str
    host: str
    port: int

    @property
    def pids(self) -> list[int]: ...
    def rss_kb(self) -> int: ...
    def cpu_seconds(self) -> float: ...


class Stage(Protocol):
    async def idle_streams(self, count: int, per_identity: int) -> list[dict[str, Any]]: ...
    async def chat_world(self, conversations: int, per_rep: int, workers: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Plan:
    """Sizes for one mode (smoke, quick, full); see ``bench/run.py`` for the three instances."""

    idle_steps: list[int]
    idle_per_identity: int
    chat_conversations: int
    chat_per_rep: int
    chat_rates: list[int]
    chat_seconds: float
    ramp_rates: list[int]
    ramp_seconds: float
    resume_conversations: int
    resume_rate: int
    resume_seconds: float
    resume_drop_after: float
    resume_down_for: float
    profile_rate: int
    profile_seconds: float
    publish_pool: int = 16
    drain_seconds: float = 5.0
    # Ramp verdict (issue 5): a rate is sustained while p99 <= 100 ms, nothing is lost or duplicated,
    # nothing fails, and at least 95% of the offered rate was acknowledged.
    ramp_p99_ms: float = 100.0


@dataclass
class Context:
    server: Server
    stage: Stage
    pool: WorkerPool
    plan: Plan
    profiles: Path | None = None
    phases: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    shares: list[float] = field(default_factory=list)  # each worker's part of the conversations

    def rates(self, rate: float) -> list[float]:
        """Split an overall rate over the workers in proportion to the conversations each drives."""
        return [rate * share for share in self.shares]


def percentile(ordered: list[int] | array[int], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence of nanoseconds, in milliseconds."""
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank] / 1e6


def latency_summary(samples: array[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": percentile(ordered, 0.50),
        "p95_ms": percentile(ordered, 0.95),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] / 1e6 if ordered else 0.0,
    }


def _workers_cpu(results: list[dict[str, Any]]) -> list[float]:
    return [round(100 * r["cpu_seconds"] / max(r["wall_seconds"], 1e-9), 1) for r in results]


def combine(results: list[dict[str, Any]], rate: float, cpu_seconds: float, wall: float) -> dict[str, Any]:
    """Merge the workers' reports of one phase into the figures the tables show."""
    latencies, posts = array("q"), array("q")
    failed: Counter[str] = Counter()
    for r in results:
        latencies.frombytes(r["latencies"])
        posts.frombytes(r["post_latencies"])
        failed.update({str(k): v for k, v in r["failed"].items()})
    acked = sum(r["acked"] for r in results)
    seconds = max(r["publish_seconds"] for r in results)
    return {
        "offered_rate": rate,
        "achieved_rate": acked / seconds if seconds > 0 else 0.0,
        "acked": acked,
        "failed": dict(failed),
        "expected": sum(r["expected"] for r in results),
        "delivered": sum(r["delivered"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "unsent": sum(r["unsent"] for r in results),
        "server_closed": sum(r["server_closed"] for r in results),
        "resets": sum(r["resets"] for r in results),
        "latency": latency_summary(latencies),
        "post_latency": latency_summary(posts),
        "server_cpu_seconds": cpu_seconds,
        "server_cpu_percent": 100 * cpu_seconds / wall if wall > 0 else 0.0,
        "server_cpu_us_per_message": 1e6 * cpu_seconds / acked if acked else 0.0,
        "workers_cpu_percent": _workers_cpu(results),
    }


async def _configure(ctx: Context, worlds: list[dict[str, Any]]) -> dict[str, Any]:
    server = ctx.server
    args = [{"host": server.host, "port": server.port, **world} for world in worlds]
    total = sum(len(world["conversations"]) for world in worlds)
    ctx.shares = [len(world["conversations"]) / total for world in worlds]
    await ctx.pool.call("configure", args)
    started = time.monotonic()
    opened = await ctx.pool.call("open_streams", {})
    failed = sum(r["failed"] for r in opened)
    if failed:
        raise RuntimeError(f"{failed} streams failed to open on {server.name}")
    return {"streams": sum(r["opened"] for r in opened), "open_seconds": time.monotonic() - started}


async def chat_phase(ctx: Context, rate: float, seconds: float) -> dict[str, Any]:
    """One fixed-rate phase on the configured world: publish for ``seconds``, then wait for delivery."""
    start_at = time.monotonic() + 0.5
    cpu = ctx.server.cpu_seconds()
    phase = next(ctx.phases)
    arguments = [
        {
            "phase": phase,
            "rate": share,
            "duration": seconds,
            "start_at": start_at,
            "pool": ctx.plan.publish_pool,
            "drain": ctx.plan.drain_seconds,
        }
        for share in ctx.rates(rate)
    ]
    results = await ctx.pool.call("chat", arguments)
    wall = max(r["publish_seconds"] for r in results)
    return combine(results, rate, ctx.server.cpu_seconds() - cpu, wall)


async def idle(ctx: Context) -> dict[str, Any]:
    """Open 1k → 20k idle streams in steps; server RSS per stream above the no-stream baseline."""
    plan, server = ctx.plan, ctx.server
    workers = len(ctx.pool)
    specs = await ctx.stage.idle_streams(max(plan.idle_steps), plan.idle_per_identity)
    await ctx.pool.call("configure", {"host": server.host, "port": server.port, "streams": [], "conversations": []})
    await asyncio.sleep(1.0)
    baseline = server.rss_kb()
    steps, opened_before = [], 0
    for target in plan.idle_steps:
        new = specs[opened_before:target]
        await ctx.pool.call("add_streams", [{"streams": new[w::workers]} for w in range(workers)])
        cpu, started = server.cpu_seconds(), time.monotonic()
        results = await ctx.pool.call("open_streams", {"concurrency": 250})
        seconds = time.monotonic() - started
        server_cpu = server.cpu_seconds() - cpu
        await asyncio.sleep(2.0)  # let the server finish any per-stream work before reading RSS
        rss = server.rss_kb()
        opened_before = target
        failed = sum(r["failed"] for r in results)  # every stream not open now, earlier steps' included
        steps.append(
            {
                "streams": target,
                "open": target - failed,
                "failed": failed,
                "open_seconds": seconds,
                "open_p50_ms": max(r["open_p50_ms"] for r in results),
                "open_max_ms": max(r["open_max_ms"] for r in results),
                "rss_kb": rss,
                "kb_per_stream": (rss - baseline) / max(1, target - failed),
                "server_cpu_seconds": server_cpu,
                "workers_cpu_percent": _workers_cpu(results),
            }
        )
        print(
            f"  idle {server.name}: {target} streams in {seconds:.1f} s, RSS {rss / 1024:.0f} MiB, "
            f"{steps[-1]['kb_per_stream']:.1f} KiB/stream, failed {failed}",
            flush=True,
        )
    await ctx.pool.call("close_streams", {})
    await asyncio.sleep(1.0)
    return {"baseline_rss_kb": baseline, "steps": steps}


async def chat(ctx: Context) -> dict[str, Any]:
    """N conversations, customer and rep streaming, at each fixed rate; then a profiled phase."""
    plan = ctx.plan
    worlds = await ctx.stage.chat_world(plan.chat_conversations, plan.chat_per_rep, len(ctx.pool))
    opened = await _configure(ctx, worlds)
    phases = []
    for rate in plan.chat_rates:
        result = await chat_phase(ctx, rate, plan.chat_seconds)
        phases.append(result)
        _print_phase(ctx.server.name, "chat", result)
    profile = None
    if ctx.profiles is not None and plan.profile_seconds > 0:
        profile = await _profiled(ctx)
    await ctx.pool.call("close_streams", {})
    return {
        "conversations": plan.chat_conversations,
        "conversations_per_rep": plan.chat_per_rep,
        **opened,
        "seconds": plan.chat_seconds,
        "phases": phases,
        "profile": profile,
    }


async def _profiled(ctx: Context) -> dict[str, Any]:
    """Two extra phases under py-spy (a flame graph, then raw stacks for the summary), unreported."""
    assert ctx.profiles is not None
    plan = ctx.plan
    profiler = Profiler(ctx.server.pids[0], ctx.profiles, ctx.server.name)
    files: dict[str, Any] = {}
    for kind in ("flamegraph", "raw"):
        recording = profiler.start(kind, plan.profile_seconds)
        await chat_phase(ctx, plan.profile_rate, plan.profile_seconds)
        files[kind] = await profiler.finish(recording)
    summary = profiler.summarise(files.get("raw"))
    return {"rate": plan.profile_rate, "seconds": plan.profile_seconds, **files, "top": summary}


def sustained(result: dict[str, Any], plan: Plan) -> bool:
    return (
        result["latency"]["p99_ms"] <= plan.ramp_p99_ms
        and result["lost"] == 0
        and result["duplicated"] == 0
        and not result["failed"]
        and not result["unsent"]
        and result["achieved_rate"] >= 0.95 * result["offered_rate"]
    )


async def ramp(ctx: Context) -> dict[str, Any]:
    """Raise the rate until p99 > 100 ms or anything is lost; the last rate that held is the answer."""
    plan = ctx.plan
    worlds = await ctx.stage.chat_world(plan.chat_conversations, plan.chat_per_rep, len(ctx.pool))
    await _configure(ctx, worlds)
    steps, best = [], None
    for rate in plan.ramp_rates:
        result = await chat_phase(ctx, rate, plan.ramp_seconds)
        result["sustained"] = sustained(result, plan)
        steps.append(result)
        _print_phase(ctx.server.name, "ramp", result)
        if not result["sustained"]:
            break
        best = result
    await ctx.pool.call("close_streams", {})
    return {
        "max_sustained_rate": best["offered_rate"] if best else 0,
        "server_cpu_us_per_message": best["server_cpu_us_per_message"] if best else None,
        "limit_reached": bool(steps) and not steps[-1]["sustained"],
        "steps": steps,
    }


async def resume(ctx: Context) -> dict[str, Any]:
    """Every stream drops at once while messages keep coming, then all reconnect with Last-Event-ID."""
    plan = ctx.plan
    workers = len(ctx.pool)
    worlds = await ctx.stage.chat_world(plan.resume_conversations, plan.chat_per_rep, workers)
    opened = await _configure(ctx, worlds)
    start_at = time.monotonic() + 0.5
    cpu = ctx.server.cpu_seconds()
    phase = next(ctx.phases)
    arguments = [
        {
            "phase": phase,
            "rate": share,
            "duration": plan.resume_seconds,
            "start_at": start_at,
            "drop_at": start_at + plan.resume_drop_after,
            "down_for": plan.resume_down_for,
            "pool": plan.publish_pool,
            "drain": 30.0,
        }
        for share in ctx.rates(plan.resume_rate)
    ]
    results = await ctx.pool.call("resume", arguments)
    wall = max(r["publish_seconds"] for r in results)
    combined = combine(results, plan.resume_rate, ctx.server.cpu_seconds() - cpu, wall)
    await ctx.pool.call("close_streams", {})
    result = {
        **opened,
        "rate": plan.resume_rate,
        "down_seconds": plan.resume_down_for,
        "reopened": sum(r["reopened"] for r in results),
        "reopen_failed": sum(r["reopen_failed"] for r in results),
        "reconnect_seconds": max(r["reconnect_seconds"] for r in results),
        "catch_up_seconds": max(r["catch_up_seconds"] for r in results),
        "catch_up_missing": sum(r["catch_up_missing"] for r in results),
        "lost_examples": [dict(e, worker=w, **r["marks"]) for w, r in enumerate(results) for e in r["lost_examples"]][
            :20
        ],
        **combined,
    }
    print(
        f"  resume {ctx.server.name}: {result['reopened']} streams back in {result['reconnect_seconds']:.2f} s, "
        f"caught up in {result['catch_up_seconds']:.2f} s, lost {result['lost']}, duplicated {result['duplicated']}, "
        f"resets {result['resets']}, closed by the server {result['server_closed']}",
        flush=True,
    )
    return result


def _print_phase(name: str, scenario: str, r: dict[str, Any]) -> None:
    latency = r["latency"]
    print(
        f"  {scenario} {name}: offered {r['offered_rate']:.0f}/s achieved {r['achieved_rate']:.0f}/s  "
        f"p50 {latency['p50_ms']:.1f} p95 {latency['p95_ms']:.1f} p99 {latency['p99_ms']:.1f} "
        f"max {latency['max_ms']:.1f} ms  lost {r['lost']} dup {r['duplicated']} failed {r['failed']}  "
        f"server CPU {r['server_cpu_percent']:.0f}% ({r['server_cpu_us_per_message']:.0f} us/msg) "
        f"workers {r['workers_cpu_percent']}",
        flush=True,
    )


SCENARIOS = {"idle": idle, "chat": chat, "ramp": ramp, "resume": resume}
