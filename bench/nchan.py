"""The reference: nginx with the nchan module, run unprivileged with its own prefix on a free port.

nchan is a mature C pub/sub server with an EventSource subscriber, so it shows what the same machine
can do when the hot path is not Python. It is configured to match Helpline's shape of load: one
channel per conversation; a customer subscribes to its conversation's channel and a rep to all of its
conversations' channels at once (nchan multiplexes up to 255 channels on one subscriber); a message is
one HTTP POST to the publisher endpoint. One worker process, like Helpline's one process. A new
subscriber starts at the oldest buffered message of its channels (all fresh, so: from the start of its
conversations), the counterpart of a Helpline customer starting at its session's ``last_event_id``. nchan keeps
messages in shared memory only (no durable log), which is part of what the ratio measures.

Install with ``bench/install_nchan.sh`` (apt-get, root); nothing here needs root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.procstat import children, cpu_seconds, rss_kb
from bench.server import free_port, wait_for_port

MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")

CONFIG = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 20000; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000000;
  nchan_shared_memory_size 512M;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location ~ ^/pub/(.+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 2000;
      nchan_message_timeout 1h;
    }}
    location ~ ^/sub/(.+)$ {{
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      nchan_channel_id_split_delimiter ",";
      nchan_subscriber_first_message oldest;
    }}
  }}
}}
"""


def available() -> bool:
    """Installed by bench/install_nchan.sh: the module, nginx, and the temp folders nginx insists on."""
    return MODULE.exists() and shutil.which("nginx") is not None and Path("/var/lib/nginx/body").is_dir()


class NchanServer:
    def __init__(self, workdir: Path) -> None:
        self.name = "nchan"
        self.prefix = workdir / "nchan"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.process: subprocess.Popen[bytes] | None = None
        self._serial = 0

    @property
    def pids(self) -> list[int]:
        if self.process is None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def rss_kb(self) -> int:
        return rss_kb(self.pids)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids)

    async def start(self) -> None:
        self.process = await asyncio.to_thread(self._spawn)
        await asyncio.to_thread(wait_for_port, self.port, self.process)

    def _spawn(self) -> subprocess.Popen[bytes]:
        shutil.rmtree(self.prefix, ignore_errors=True)
        self.prefix.mkdir(parents=True)
        config = self.prefix / "nginx.conf"
        config.write_text(CONFIG.format(module=MODULE, prefix=self.prefix, port=self.port))
        command = ["nginx", "-p", str(self.prefix), "-c", str(config)]
        if os.geteuid() == 0:
            # Root would make nginx switch its workers to another user; run the whole thing as nobody.
            for path in self.prefix.parents:  # nobody must be able to reach the prefix
                if path == Path("/") or path.stat().st_mode & 0o001:
                    break
                path.chmod(path.stat().st_mode | 0o011)
            os.chmod(self.prefix, 0o777)
            os.chmod(config, 0o644)
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        with (self.prefix.parent / "nchan.log").open("wb") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


class NchanStage:
    """The same shape of load as :class:`bench.server.HelplineStage`, in nchan's terms."""

    def __init__(self, server: NchanServer) -> None:
        self.server = server
        self._serial = 0

    def _channel(self) -> str:
        self._serial += 1
        return f"ch{self._serial}"

    async def idle_streams(self, count: int, per_identity: int) -> list[dict[str, Any]]:
        return [{"path": f"/sub/{self._channel()}", "headers": {}} for _ in range(count)]

    async def chat_world(self, conversations: int, per_rep: int, workers: int) -> list[dict[str, Any]]:
        reps = max(1, -(-conversations // per_rep))
        channels = [self._channel() for _ in range(conversations)]
        rep_of = [i % reps for i in range(conversations)]
        worlds: list[dict[str, Any]] = [{"streams": [], "conversations": []} for _ in range(workers)]
        rep_stream: dict[int, tuple[int, int]] = {}
        for r in range(reps):
            w = r % workers
            rep_stream[r] = (w, len(worlds[w]["streams"]))
            mine = ",".join(channels[i] for i in range(conversations) if rep_of[i] == r)
            worlds[w]["streams"].append({"path": f"/sub/{mine}", "headers": {}})
        authority = f"{self.server.host}:{self.server.port}"
        for i, channel in enumerate(channels):
            w, rep_index = rep_stream[rep_of[i]]
            world = worlds[w]
            customer_index = len(world["streams"])
            world["streams"].append({"path": f"/sub/{channel}", "headers": {}})
            head = f"POST /pub/{channel} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: text/plain\r\n"
            world["conversations"].append(
                {"publish": [head, head], "body": "%s", "streams": [customer_index, rep_index]}
            )
        return worlds

    def close(self) -> None:
        pass
