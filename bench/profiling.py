"""py-spy on the server during the chat scenario: a flame graph to look at, raw stacks to summarise.

py-spy samples another process from outside (``--nonblocking``: without pausing it), so the server runs
its real code at nearly full speed. The profiled phases are extra and never reported as figures.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    kind: str
    path: Path
    process: subprocess.Popen[bytes] | None


class Profiler:
    def __init__(self, pid: int, folder: Path, name: str) -> None:
        self.pid = pid
        self.folder = folder
        self.name = name

    def start(self, kind: str, seconds: float) -> Recording:
        suffix = "svg" if kind == "flamegraph" else "txt"
        path = self.folder / f"chat-{self.name}.{'stacks.' if kind == 'raw' else ''}{suffix}"
        binary = py_spy()
        if binary is None:
            return Recording(kind, path, None)
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [binary, "record", "--pid", str(self.pid), "--duration", str(max(1, round(seconds))), "--rate", "250"]
        command += ["--nonblocking", "--format", kind, "--output", str(path)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return Recording(kind, path, process)

    async def finish(self, recording: Recording) -> str | None:
        if recording.process is None:
            return None
        try:
            await asyncio.to_thread(recording.process.wait, 60)
        except subprocess.TimeoutExpired:
            recording.process.kill()
        if not recording.path.exists():
            return None
        return str(recording.path)

    def summarise(self, raw: str | None, top: int = 15) -> dict[str, Any]:
        """Share of samples per function: inclusive (anywhere on the stack) and self (on top)."""
        if raw is None:
            return {}
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        packages: Counter[str] = Counter()
        total = 0
        for line in Path(raw).read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_short(f) for f in stack.split(";")]
            total += count
            own[frames[-1]] += count
            packages[_package(stack.rsplit(";", 1)[-1])] += count
            for frame in set(frames):
                inclusive[frame] += count
        if not total:
            return {}
        return {
            "samples": total,
            "inclusive": [(f, round(100 * c / total, 1)) for f, c in inclusive.most_common(top)],
            "self": [(f, round(100 * c / total, 1)) for f, c in own.most_common(top)],
            "self_by_package": [(p, round(100 * c / total, 1)) for p, c in packages.most_common()],
        }


def _package(frame: str) -> str:
    """The top-level package of a frame's file (py-spy names files relative to their sys.path entry)."""
    path = frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return path.split("/", 1)[0].removesuffix(".py") or "native"


def _short(frame: str) -> str:
    """``function (path/to/module.py:line)`` -> ``function (module.py)``: lines differ, functions don't."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    keep = (
        "/".join(parts[-2:]) if "site-packages" not in path else "/".join(parts[parts.index("site-packages") + 1 :][:3])
    )
    return f"{name} ({keep})"
