"""The benchmark's smoke run (issue 5): every scenario at toy sizes, so bench/ cannot rot unnoticed.

It checks correctness, never speed: nothing lost, nothing duplicated, and the JSON every scenario writes
has the keys the report reads. Helpline runs on SQLite only; nchan joins when it is installed, and is
required (installed by bench/install_nchan.sh) only under HELPLINE_REQUIRE_SERVICES=1, like the other
service-backed tests.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench import nchan, queued
from bench.report import PHASE_KEYS, SCENARIO_KEYS
from bench.run import main
from tests.conftest import REQUIRE_SERVICES, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent


def _targets() -> list[str]:
    targets = ["sqlite"]
    if not nchan.available() and REQUIRE_SERVICES:
        subprocess.run(["bash", str(ROOT / "bench" / "install_nchan.sh")], check=False, timeout=600)
        if not nchan.available():
            skip_or_fail("nchan (nginx + libnginx-mod-nchan) is not installed: run bench/install_nchan.sh")
    if nchan.available():
        targets.append("nchan")
    return targets


def _check_phase(phase: dict[str, object], where: str) -> None:
    assert PHASE_KEYS <= phase.keys(), f"{where}: missing {PHASE_KEYS - phase.keys()}"
    assert phase["lost"] == 0, f"{where}: lost {phase['lost']}"
    assert phase["duplicated"] == 0, f"{where}: duplicated {phase['duplicated']}"


@pytest.mark.timeout(90)
def test_every_scenario_runs_and_loses_nothing(tmp_path: Path) -> None:
    targets = _targets()
    assert main(["--smoke", "--targets", ",".join(targets), "--out", str(tmp_path), "--workers", "2"]) == 0
    names = ["helpline-sqlite"] + (["nchan"] if "nchan" in targets else [])
    for name in names:
        for scenario, keys in SCENARIO_KEYS.items():
            path = tmp_path / f"{name}-{scenario}.json"
            assert path.exists(), f"{path.name} was not written"
            result = json.loads(path.read_text())
            assert keys <= result.keys(), f"{path.name}: missing {keys - result.keys()}"
            where = f"{name} {scenario}"
            if scenario == "idle":
                assert all(step["failed"] == 0 for step in result["steps"]), where
            elif scenario == "chat":
                for phase in result["phases"]:
                    _check_phase(phase, where)
                    assert phase["acked"] > 0, f"{where}: nothing was acknowledged"
            elif scenario == "ramp":
                for phase in result["steps"]:
                    _check_phase(phase, where)
            else:
                _check_phase(result, where)
                assert result["reopen_failed"] == 0, where
                assert result["catch_up_missing"] == 0, where
    assert (tmp_path / "tables.md").read_text().startswith("## Figures")


@pytest.mark.timeout(120)
@pytest.mark.postgres
@pytest.mark.redis
def test_the_cluster_bench_reads_the_append_lock_of_every_node(
    tmp_path: Path, postgres_url: str, redis_bus_url: str
) -> None:
    """bench/cluster.py at toy sizes: two nodes on PostgreSQL, the ramp loses nothing, and every
    writer's lock figures were read from its log (the supervisor's set-up writes counted too). The
    fixtures only make the test skip (or fail under CI) when PostgreSQL or Redis is absent."""
    from bench.cluster import main as cluster

    out = tmp_path / "cluster.json"
    assert cluster(["--nodes", "2", "--mode", "smoke", "--workers", "2", "--out", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["nodes"] == 2 and result["writer_processes"] >= 2
    assert result["writes"] > 0 and result["lock_hold_ms_per_batch"] > 0
    assert result["lock_ceiling_writes_per_second"] > 0
    for step in result["ramp_steps"]:
        _check_phase(step, "cluster ramp")


@pytest.mark.timeout(120)
def test_the_queue_size_scenario_runs_and_every_customer_is_told_its_position(tmp_path: Path) -> None:
    """bench/queued.py at toy sizes (issue 16): it fails by itself when a customer is not told the
    position it was queued at, so a router that loses count breaks it."""
    out = tmp_path / "queued.json"
    arguments = ["--backends", "sqlite", "--sizes", "0,25", "--hold", "1", "--pairs", "5", "--settle", "20"]
    assert queued.main([*arguments, "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["queued"] for r in results] == [0, 25]
    for r in results:
        assert {"idle_cpu_percent", "pair_wall_ms", "pair_cpu_ms", "fill_pairs_per_second"} <= r.keys()
        assert r["pair_wall_ms"] > 0 and r["idle_cpu_percent"] >= 0
