"""An independent SSE implementation parses our streams: the npm ``eventsource`` package under node."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, make_settings, skip_or_fail
from tests.streams import LiveWorld

pytestmark = pytest.mark.timeout(180)
NODE_DIR = Path(os.environ.get("HELPLINE_TEST_NODE_DIR", Path.home() / ".cache" / "helpline-test-node"))
PACKAGE = "eventsource@5"

LISTENER = """
import { EventSource } from 'eventsource';
const [url, want, types] = [process.argv[2], Number(process.argv[3]), process.argv[4].split(',')];
const source = new EventSource(url);
let count = 0;
for (const type of types) {
  source.addEventListener(type, (e) => {
    console.log(JSON.stringify({type: e.type, id: e.lastEventId, data: JSON.parse(e.data)}));
    if (e.lastEventId && ++count >= want) { source.close(); process.exit(0); }
  });
}
source.onerror = (e) => { console.error('error', e.message ?? e); };
setTimeout(() => { console.error('timeout'); process.exit(2); }, 20000);
"""


@pytest.fixture(scope="module")
def node_eventsource() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail("node and npm are needed for the eventsource conformance test")
    if not (NODE_DIR / "node_modules" / "eventsource").exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", PACKAGE],
            capture_output=True,
            text=True,
            timeout=150,
        )
        if result.returncode != 0:
            skip_or_fail(f"npm install {PACKAGE} failed: {result.stderr[-500:]}")
    script = NODE_DIR / "listen.mjs"
    script.write_text(LISTENER)
    return script


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(f"sqlite:///{tmp_path / 'n.db'}", demo=True, demo_password="demo-password-123"))
    live.start()
    yield live
    live.stop()


async def test_node_eventsource_reads_every_event_with_its_id_type_and_data(
    node_eventsource: Path, server: LiveServer
) -> None:
    async with LiveWorld(server.url, "demo-password-123") as world:
        await world.customer("alice")
        conversation = await world.conversation("alice", "c-node", rep="rep")
        texts = ["plain", "multi\nline\r\ntext", "unicode ✓ 你好 🎧", 'quotes " and \\ backslash', "x" * 5000]
        for n, text in enumerate(texts):
            await world.send("alice", conversation, text, f"m{n}")
        ticket = (await world.post("alice", "/api/v1/stream-tickets"))["ticket"]
        polled = (
            await world.http.get(
                "/api/v1/events/poll?after=0&timeout=0", headers={"Authorization": f"Bearer {world.tokens['alice']}"}
            )
        ).json()["events"]
    types = sorted({e["type"] for e in polled})
    process = await asyncio.create_subprocess_exec(
        "node",
        str(node_eventsource),
        f"{server.url}/api/v1/events?ticket={ticket}&last_event_id=0",
        str(len(polled)),
        ",".join(types),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=NODE_DIR,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    received = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [(int(r["id"]), r["type"], r["data"]) for r in received] == [(e["id"], e["type"], e) for e in polled]
    assert [r["data"]["text"] for r in received if r["type"] == "conversation.message"] == texts
