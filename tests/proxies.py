"""Real reverse proxies in front of a LiveServer: nginx (buffering by default, or hostile) and haproxy.

Each proxy runs as a child process of the test, on a free unprivileged port, with its config, pid file,
logs and temp files in a directory of its own, and is stopped when the context manager exits. Nothing
touches the system's nginx or haproxy configuration or services. A missing binary skips the test (or
fails it under ``HELPLINE_REQUIRE_SERVICES=1``).

The shapes a deployment has to survive (docs/deployment.md):

- ``nginx(upstream)``: a plain ``proxy_pass`` with nginx's default ``proxy_buffering on``; the stream
  answers ``X-Accel-Buffering: no``, which turns that buffering off for it.
- ``nginx(upstream, gzip=True)``: the same, also compressing ``text/event-stream`` as many configs do.
  Here the header is provably what keeps events flowing (see GZIP_NGINX).
- ``nginx(upstream, hostile=True)``: compresses, ignores ``X-Accel-Buffering`` and has buffers large
  enough to hold a whole stream, like a corporate proxy that buffers everything. Only long-polling gets
  through it.
- ``haproxy(upstream)``: http mode, ``timeout client``/``timeout server`` of 10 s and no ``timeout
  tunnel``, so a stream idle for 10 s really is cut. Only heartbeats keep it alive.
- ``silent_firewall(upstream)``: an asyncio TCP proxy in this process that, like a stateful firewall or
  NAT whose idle timer expired, stops forwarding a flow idle for 10 s in either direction, without a FIN
  or a RST: both ends keep an open socket into which bytes vanish. Only a client watchdog notices.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, free_port, skip_or_fail

__all__ = [
    "Proxy",
    "SilentFirewall",
    "find_binary",
    "haproxy",
    "haproxy_proxy",
    "hostile_nginx_proxy",
    "nginx",
    "nginx_proxy",
    "silent_firewall",
    "silent_firewall_proxy",
]

# Debian installs both in /usr/sbin, which is not on an unprivileged user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IDLE_TIMEOUT_SECONDS = 10


@dataclass
class Proxy:
    """A running proxy: where to reach it, and its logs for failure messages."""

    name: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self, limit: int = 4000) -> str:
        """The tail of every log the proxy wrote (its stderr, nginx's error log)."""
        parts = []
        for path in sorted(self.directory.glob("*.log")):
            text = path.read_text(errors="replace")
            if text.strip():
                parts.append(f"--- {path.name}\n{text[-limit:]}")
        return "\n".join(parts) or "(no proxy logs)"


def find_binary(name: str) -> str:
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        skip_or_fail(f"{name} not installed")
        raise AssertionError("unreachable")  # skip_or_fail raises
    return path


def _wait_until_listening(proxy: Proxy) -> None:
    """Poll the port until it accepts a connection; fail with the proxy's logs if it exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proxy.process.poll() is not None:
            raise RuntimeError(f"{proxy.name} exited with {proxy.process.returncode}:\n{proxy.logs()}")
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proxy.name} did not listen within {START_TIMEOUT} s:\n{proxy.logs()}") from None
            time.sleep(0.02)


@contextmanager
def _run(name: str, command: list[str], directory: Path, port: int, stop_signal: int) -> Iterator[Proxy]:
    with open(directory / "stderr.log", "wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=directory
        )
    proxy = Proxy(name, port, directory, process)
    try:
        _wait_until_listening(proxy)
        yield proxy
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)


def _upstream_address(upstream: str) -> str:
    address = upstream.removeprefix("http://").rstrip("/")
    if "/" in address or ":" not in address:
        raise ValueError(f"upstream must look like http://host:port, got {upstream!r}")
    return address


# -- nginx ----------------------------------------------------------------------------------------
# Measured on nginx 1.22 in front of uvicorn: `proxy_buffering on` alone never holds an event. uvicorn
# always answers with chunked encoding, nginx's buffered pipe passes each complete upstream chunk on as a
# "recycled" buffer, and the write filter flushes recycled buffers at once. What does hold a stream is a
# filter that keeps its own buffers, such as gzip: in buffered mode nothing asks it to flush, so the
# compressed output waits until deflate's buffers fill (with SSE, minutes or never). In unbuffered mode,
# which `X-Accel-Buffering: no` selects, nginx flushes gzip after every upstream read. So the header is
# what keeps events flowing through an nginx that compresses `text/event-stream`, a common setup.
GZIP_NGINX = """
            gzip on;
            gzip_proxied any;
            gzip_types text/event-stream;"""

# Refuses our header and buffers up to 4 MiB per response. gzip is what actually holds the bytes (see
# above); `postpone_output 0` sends the response header as soon as nginx has it, so the client sees
# "200, text/event-stream" and then silence (the usual shape of a buffering proxy). With `hold_headers`
# even the header waits (nginx postpones writes under 1460 bytes that nothing flushes).
HOSTILE_NGINX = """
            proxy_ignore_headers X-Accel-Buffering;
            proxy_buffering on;
            proxy_buffer_size 64k;
            proxy_buffers 64 64k;
            proxy_busy_buffers_size 128k;"""

NGINX_CONF = """\
{user}worker_processes 1;
events {{
    worker_connections 256;
}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;{extra}
        }}
    }}
}}
"""


@contextmanager
def nginx(
    upstream: str,
    *,
    gzip: bool = False,
    hostile: bool = False,
    hold_headers: bool = False,
    directory: Path | None = None,
) -> Iterator[Proxy]:
    """nginx reverse-proxying to `upstream` (``http://host:port``), with its default ``proxy_buffering on``.

    `gzip` also compresses ``text/event-stream``. `hostile` compresses and ignores ``X-Accel-Buffering``,
    holding the stream's body (and with `hold_headers` its header too).
    """
    binary = find_binary("nginx")
    extra = ""
    if gzip or hostile:
        extra += GZIP_NGINX
    if hostile:
        extra += HOSTILE_NGINX
        if not hold_headers:
            extra += "\n            postpone_output 0;"
    name = "hostile nginx" if hostile else "nginx with gzip" if gzip else "nginx"
    with _workdir(directory, "nginx") as work:
        port = free_port()
        conf = work / "nginx.conf"
        # As root, nginx's workers would switch to `nobody`, who cannot reach a private temp directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(user=user, dir=work, port=port, upstream=_upstream_address(upstream), extra=extra)
        )
        globals_ = f"daemon off; pid {work}/nginx.pid; error_log {work}/error.log info;"
        command = [binary, "-p", f"{work}/", "-c", str(conf), "-g", globals_]
        check = subprocess.run([*command, "-t", "-q"], capture_output=True, timeout=START_TIMEOUT, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected its config:\n{check.stderr.decode(errors='replace')}")
        # SIGTERM is nginx's fast shutdown; SIGQUIT would wait for open streams to end.
        with _run(name, command, work, port, signal.SIGTERM) as proxy:
            yield proxy


# -- haproxy --------------------------------------------------------------------------------------
# No `timeout tunnel` on purpose: streams are judged by `timeout client`/`timeout server` like any
# other response, so 10 s without a byte cuts them (HAProxy docs, "timeout client").
HAPROXY_CFG = """\
global
    maxconn 256

defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client {idle}s
    timeout server {idle}s

frontend helpline
    bind 127.0.0.1:{port}
    default_backend app

backend app
    server app1 {upstream}
"""


@contextmanager
def haproxy(
    upstream: str, *, idle_seconds: int = IDLE_TIMEOUT_SECONDS, directory: Path | None = None
) -> Iterator[Proxy]:
    """haproxy in http mode in front of `upstream`, cutting connections idle for `idle_seconds`."""
    binary = find_binary("haproxy")
    with _workdir(directory, "haproxy") as work:
        port = free_port()
        cfg = work / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(idle=idle_seconds, port=port, upstream=_upstream_address(upstream)))
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(cfg)], capture_output=True, timeout=START_TIMEOUT, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected its config:\n{check.stdout.decode(errors='replace')}")
        # -db: stay in the foreground, so the process we started is the one we stop.
        with _run("haproxy", [binary, "-f", str(cfg), "-db"], work, port, signal.SIGTERM) as proxy:
            yield proxy


# -- a firewall that silently drops idle flows ----------------------------------------------------
class SilentFirewall:
    """A TCP proxy on its own event loop and thread, forwarding 127.0.0.1:`port` to `upstream_port`.

    A flow (one client connection and its upstream connection) with no byte in either direction for
    `idle_seconds` is *dropped*: from then on whatever either side sends is read and discarded, and
    nothing is ever closed, so neither end learns anything (no FIN, no RST, no backpressure), exactly
    what a middlebox that forgot a flow does to a long-lived response. `flows` and `dropped` count them.
    """

    def __init__(self, upstream_port: int, *, idle_seconds: float = IDLE_TIMEOUT_SECONDS, port: int | None = None):
        self.upstream_port = upstream_port
        self.idle_seconds = idle_seconds
        self.port = port or free_port()
        self.flows = 0
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="silent-firewall", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SilentFirewall:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(START_TIMEOUT)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._flow, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in tuple(self._writers):
            writer.transport.abort()

    async def _flow(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._tasks.add(task := asyncio.current_task())  # type: ignore[arg-type]
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        self.flows += 1
        loop = asyncio.get_running_loop()
        state = {"last": loop.time(), "dropped": False}

        def expired() -> bool:
            if not state["dropped"] and loop.time() - float(state["last"]) >= self.idle_seconds:
                state["dropped"] = True
                self.dropped += 1
            return bool(state["dropped"])

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while chunk := await reader.read(65536):
                if expired():
                    continue  # into the void
                state["last"] = loop.time()
                writer.write(chunk)
                await writer.drain()
            # One side closed while the flow was still forwarded: pass the close on, like TCP would.
            if not state["dropped"] and writer.can_write_eof():
                writer.write_eof()

        pumps = [
            asyncio.create_task(pump(client_reader, upstream_writer)),
            asyncio.create_task(pump(upstream_reader, client_writer)),
        ]
        try:
            while not all(p.done() for p in pumps):
                await asyncio.wait(pumps, timeout=0.1)
                expired()
        except asyncio.CancelledError:
            for p in pumps:
                p.cancel()
            raise
        finally:
            for writer in (client_writer, upstream_writer):
                self._writers.discard(writer)
                writer.transport.abort()
            self._tasks.discard(task)  # type: ignore[arg-type]


@contextmanager
def silent_firewall(
    upstream: str, *, idle_seconds: float = IDLE_TIMEOUT_SECONDS, port: int | None = None
) -> Iterator[SilentFirewall]:
    """A SilentFirewall in front of `upstream` (``http://host:port``), stopped on exit."""
    firewall = SilentFirewall(int(_upstream_address(upstream).rsplit(":", 1)[1]), idle_seconds=idle_seconds, port=port)
    firewall.start()
    try:
        yield firewall
    finally:
        firewall.stop()


@contextmanager
def _workdir(directory: Path | None, name: str) -> Iterator[Path]:
    if directory is not None:
        work = directory / name
        work.mkdir(parents=True, exist_ok=True)
        yield work
        return
    with tempfile.TemporaryDirectory(prefix=f"helpline-{name}-") as temp:
        yield Path(temp)


# -- fixtures (import them into a test module to use them) ----------------------------------------
# Each takes options through indirect parametrization, e.g.
# ``@pytest.mark.parametrize("nginx_proxy", [{"gzip": True}], indirect=True)``.
def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", None) or {})


@pytest.fixture
def nginx_proxy(request: pytest.FixtureRequest, live_server: LiveServer, tmp_path: Path) -> Iterator[Proxy]:
    """nginx with its default buffering in front of `live_server` (options: `gzip`)."""
    with nginx(live_server.url, directory=tmp_path, **_options(request)) as proxy:
        yield proxy


@pytest.fixture
def hostile_nginx_proxy(request: pytest.FixtureRequest, live_server: LiveServer, tmp_path: Path) -> Iterator[Proxy]:
    """nginx that ignores X-Accel-Buffering and holds the stream, in front of `live_server` (options:
    `hold_headers`)."""
    with nginx(live_server.url, hostile=True, directory=tmp_path, **_options(request)) as proxy:
        yield proxy


@pytest.fixture
def silent_firewall_proxy(request: pytest.FixtureRequest, live_server: LiveServer) -> Iterator[SilentFirewall]:
    """A firewall silently dropping flows idle for 10 s, in front of `live_server` (options: `idle_seconds`)."""
    with silent_firewall(live_server.url, **_options(request)) as firewall:
        yield firewall


@pytest.fixture
def haproxy_proxy(request: pytest.FixtureRequest, live_server: LiveServer, tmp_path: Path) -> Iterator[Proxy]:
    """haproxy cutting connections idle for 10 s, in front of `live_server` (options: `idle_seconds`)."""
    with haproxy(live_server.url, directory=tmp_path, **_options(request)) as proxy:
        yield proxy
