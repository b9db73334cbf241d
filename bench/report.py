"""Tables (printed, and as Markdown for RESULTS.md) with Helpline/nchan ratios, and the PNG charts.

A ratio is Helpline's figure divided by nchan's, for every figure both have: above 1 means Helpline
uses more (time, memory, CPU) or, for rates, sustains more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.procstat import machine
from bench.scenarios import Plan

COLUMNS = ("helpline-sqlite", "helpline-sqlite-w2", "helpline-postgres", "helpline-postgres-w2", "nchan")
TITLES = {
    "helpline-sqlite": "Helpline SQLite",
    "helpline-sqlite-w2": "Helpline SQLite, 2 workers",
    "helpline-postgres": "Helpline PostgreSQL",
    "helpline-postgres-w2": "Helpline PostgreSQL, 2 workers",
    "nchan": "nchan",
}

# The keys each scenario's JSON always has (checked by tests/test_bench_smoke.py).
SCENARIO_KEYS = {
    "idle": {"baseline_rss_kb", "steps"},
    "chat": {"conversations", "streams", "phases", "profile"},
    "ramp": {"max_sustained_rate", "server_cpu_us_per_message", "limit_reached", "steps"},
    "resume": {"reopened", "reconnect_seconds", "catch_up_seconds", "lost", "duplicated", "latency"},
}
PHASE_KEYS = {"offered_rate", "achieved_rate", "lost", "duplicated", "failed", "latency", "server_cpu_us_per_message"}


def figures(results: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, float | None]]]:
    """(label, {target: value}) for every headline figure, in table order."""
    rows: list[tuple[str, dict[str, float | None]]] = []

    def add(label: str, pick: Any) -> None:
        values: dict[str, float | None] = {}
        for target in COLUMNS:
            try:
                values[target] = pick(results[target])
            except (KeyError, IndexError, TypeError, StopIteration):
                values[target] = None
        if any(v is not None for v in values.values()):
            rows.append((label, values))

    steps = sorted({s["streams"] for r in results.values() for s in r.get("idle", {}).get("steps", [])})
    for n in steps:

        def step(r: dict[str, Any], n: int = n) -> dict[str, Any]:
            return next(s for s in r["idle"]["steps"] if s["streams"] == n)

        add(f"idle {n} streams: KiB RSS per stream", lambda r, f=step: f(r)["kb_per_stream"])
        add(f"idle {n} streams: seconds to open", lambda r, f=step: f(r)["open_seconds"])
    rates = sorted({p["offered_rate"] for r in results.values() for p in r.get("chat", {}).get("phases", [])})
    for rate in rates:

        def phase(r: dict[str, Any], rate: float = rate) -> dict[str, Any]:
            return next(p for p in r["chat"]["phases"] if p["offered_rate"] == rate)

        for q in ("p50", "p95", "p99", "max"):
            add(f"chat {rate:.0f} msg/s: {q} ms", lambda r, f=phase, q=q: f(r)["latency"][f"{q}_ms"])
        add(f"chat {rate:.0f} msg/s: lost / duplicated", lambda r, f=phase: f(r)["lost"] + f(r)["duplicated"])
        add(f"chat {rate:.0f} msg/s: server CPU µs/msg", lambda r, f=phase: f(r)["server_cpu_us_per_message"])
    add("ramp: highest sustained msg/s", lambda r: r["ramp"]["max_sustained_rate"])
    add("ramp: server CPU µs/msg at that rate", lambda r: r["ramp"]["server_cpu_us_per_message"])
    add("resume: seconds until all reconnected", lambda r: r["resume"]["reconnect_seconds"])
    add("resume: seconds until all caught up", lambda r: r["resume"]["catch_up_seconds"])
    add("resume: lost", lambda r: r["resume"]["lost"])
    add("resume: duplicated", lambda r: r["resume"]["duplicated"])
    return rows


def _order(target: str) -> int:
    return COLUMNS.index(target) if target in COLUMNS else len(COLUMNS)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    if b == 0:
        return "=" if a == 0 else "∞"
    return f"{a / b:.3g}x"


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """One column per target that ran (SQLite and PostgreSQL always), then each Helpline one / nchan."""
    columns = [c for c in COLUMNS if c in results or c in ("helpline-sqlite", "helpline-postgres", "nchan")]
    helplines = [c for c in columns if c != "nchan"]
    header = [TITLES[c] for c in columns] + [f"{TITLES[c].removeprefix('Helpline ')} / nchan" for c in helplines]
    lines = ["| figure | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for label, values in figures(results):
        cells = [_fmt(values[c]) for c in columns]
        cells += [_ratio(values[c], values["nchan"]) for c in helplines]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def details(results: dict[str, dict[str, Any]]) -> str:
    """Every ramp step, with achieved rate and CPU, per target: what the headline table summarises."""
    lines = [
        "| target | scenario | offered/s | achieved/s | p50 ms | p99 ms | max ms | lost | dup | failed or shed "
        "| server CPU % | µs/msg | generator CPU % |",
        "|---" * 13 + "|",
    ]
    for target, by_scenario in sorted(results.items(), key=lambda item: _order(item[0])):
        for scenario in ("chat", "ramp"):
            block = by_scenario.get(scenario, {})
            for p in block.get("phases", block.get("steps", [])):
                lat = p["latency"]
                cells = [
                    TITLES.get(target, target),
                    scenario,
                    f"{p['offered_rate']:.0f}",
                    f"{p['achieved_rate']:.0f}",
                    f"{lat['p50_ms']:.1f}",
                    f"{lat['p99_ms']:.1f}",
                    f"{lat['max_ms']:.0f}",
                    str(p["lost"]),
                    str(p["duplicated"]),
                    str(sum(p["failed"].values()) + p.get("unsent", 0)),
                    f"{p['server_cpu_percent']:.0f}",
                    f"{p['server_cpu_us_per_message']:.0f}",
                    "/".join(f"{c:.0f}" for c in p["workers_cpu_percent"]),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """latency-vs-rate.png and rss-vs-streams.png (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (target, by_scenario) in enumerate(sorted(results.items(), key=lambda item: _order(item[0]))):
        colour = f"C{index}"
        ramp = by_scenario.get("ramp", {}).get("steps", [])
        chat = by_scenario.get("chat", {}).get("phases", [])
        for q, style, marker in (("p50", "--", "o"), ("p99", "-", "s")):
            name = f"{TITLES.get(target, target)} {q}"
            if ramp:
                values = [max(p["latency"][f"{q}_ms"], 0.01) for p in ramp]
                ax.plot(
                    [p["offered_rate"] for p in ramp],
                    values,
                    style,
                    marker=marker,
                    color=colour,
                    label=f"{name} (ramp)",
                )
            if chat:
                values = [max(p["latency"][f"{q}_ms"], 0.01) for p in chat]
                ax.scatter(
                    [p["offered_rate"] for p in chat],
                    values,
                    marker=marker,
                    s=70,
                    facecolors="none",
                    edgecolors=colour,
                    label=f"{name} (chat)",
                )
    ax.axhline(100, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="offered messages per second", ylabel="publish → deliver latency (ms)", xscale="log", yscale="log")
    ax.set_title("Latency vs offered rate (dotted: the ramp's 100 ms p99 limit)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = folder / "latency-vs-rate.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(8, 5))
    for target, by_scenario in sorted(results.items(), key=lambda item: _order(item[0])):
        idle = by_scenario.get("idle")
        if not idle:
            continue
        xs = [0] + [s["streams"] for s in idle["steps"]]
        ys = [idle["baseline_rss_kb"] / 1024] + [s["rss_kb"] / 1024 for s in idle["steps"]]
        ax.plot(xs, ys, marker="o", label=TITLES.get(target, target))
    top = max((s["streams"] for r in results.values() for s in r.get("idle", {}).get("steps", [])), default=0)
    if top:
        ax.plot([0, top], [0, top * 22_000 / 2**20], ":", color="grey", label="target slope: 22 kB per stream")
    ax.set(xlabel="open idle streams", ylabel="server RSS (MiB)", title="Server RSS vs idle streams")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    path = folder / "rss-vs-streams.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
    return written


def write(results: dict[str, dict[str, Any]], out: Path, plan: Plan, plots: Path | None) -> None:
    table, more = markdown(results), details(results)
    text = f"## Figures\n\n{table}\n## Chat and ramp phases\n\n{more}"
    (out / "tables.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"machine": machine(), "plan": plan.__dict__}, indent=2) + "\n")
    print()
    print(text)
    if plots is not None:
        for path in plot(results, plots):
            print(f"chart: {path}")


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """Every ``<target>-<scenario>.json`` in ``folder``, as :func:`bench.run.run` returns them."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*-*.json")):
        result = json.loads(path.read_text())
        if "target" in result and "scenario" in result:
            results.setdefault(result["target"], {})[result["scenario"]] = result
    return results


def main(argv: list[str] | None = None) -> int:
    """Re-render tables (and charts) from a run's JSON, e.g. after re-running one scenario into it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("folder", type=Path, help="a run's JSON folder, e.g. bench/out/full")
    parser.add_argument("--plots", type=Path, help="also draw the charts into this folder")
    args = parser.parse_args(argv)
    plan = Plan(**json.loads((args.folder / "summary.json").read_text())["plan"])
    write(load(args.folder), args.folder, plan, args.plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
