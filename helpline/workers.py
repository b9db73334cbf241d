"""``helpline serve --workers N``: N server processes sharing one listening socket.

One CPython process tops out near one core (bench/RESULTS.md). Several need a shared bus (``redis://``),
so an event written by one process reaches the streams held by the others; the store's cross-process
lock (PostgreSQL's advisory lock, a file lock beside an SQLite database) keeps ids published in order.

The parent does once what must happen once (migrations, demo data, the secret key when demo mode makes
one up), binds the socket, and starts the workers **spawned**, not forked, so none inherits an event
loop or a database connection. It replaces a worker that dies, and on SIGTERM or SIGINT asks each to
stop gracefully: its streams end with ``stream.reconnect`` and their clients resume elsewhere. Workers
run in their own process group (a terminal's Ctrl-C reaches the parent only, which stops them once)
and stop by themselves if the parent disappears.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType

from helpline.config import ConfigurationError, Settings

logger = logging.getLogger("helpline.workers")

STOP_TIMEOUT = 30.0  # a worker still running this long after SIGTERM is killed
RESTART_BACKOFF = (1.0, 30.0)  # a worker that keeps dying is restarted ever more slowly, up to 30 s


def check(settings: Settings, workers: int) -> None:
    if workers > 1 and settings.bus_url.split(":", 1)[0].lower() == "memory":
        raise ConfigurationError(
            f"--workers {workers} needs a shared bus (--bus-url redis://…): with memory:// an event would "
            "reach only the streams of the process that wrote it"
        )


async def prepare(settings: Settings) -> None:
    """Migrate, seed the demo, and check the bus, once, before any worker starts."""
    from helpline.bus import open_bus
    from helpline.bus.memory import MemoryBus
    from helpline.demo import seed_demo
    from helpline.services import Services
    from helpline.store import open_store

    bus = open_bus(settings.bus_url)
    await bus.connect()  # fail here, with one clear message, rather than in every worker
    await bus.disconnect()
    store = await open_store(settings.database_url)
    try:
        if settings.demo:
            await seed_demo(Services.build(settings, store, MemoryBus()))  # stored; replayed by streams
    finally:
        await store.close()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: Settings, host: str, port: int, sock: socket.socket, parent: int) -> None:
    """A worker's whole life (the spawned process's target)."""
    from helpline.app import create_app
    from helpline.runner import build_server, log_like_uvicorn

    os.setpgrp()
    log_like_uvicorn()
    server = build_server(create_app(settings, seed_demo=False), host, port, freeze_startup_heap=True)

    def stop_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        server.stop_gracefully()

    threading.Thread(target=stop_when_orphaned, name="helpline-parent-watch", daemon=True).start()
    server.run(sockets=[sock])


@dataclass
class Supervisor:
    settings: Settings
    host: str
    port: int
    count: int
    stopping: threading.Event = field(default_factory=threading.Event)
    processes: list[BaseProcess] = field(default_factory=list)

    def run(self) -> int:
        sock = bind(self.host, self.port)
        context = multiprocessing.get_context("spawn")
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        started_at: list[float] = []
        backoff: list[float] = []
        for _ in range(self.count):
            self.processes.append(self._start(context, sock))
            started_at.append(time.monotonic())
            backoff.append(RESTART_BACKOFF[0])
        try:
            while not self.stopping.wait(0.5):
                for n, process in enumerate(self.processes):
                    if process.is_alive() or self.stopping.is_set():
                        continue
                    quick_death = time.monotonic() - started_at[n] < 10
                    backoff[n] = min(backoff[n] * 2, RESTART_BACKOFF[1]) if quick_death else RESTART_BACKOFF[0]
                    logger.error("worker %s exited with %s; restarting it", process.pid, process.exitcode)
                    if self.stopping.wait(backoff[n] if quick_death else 0):
                        break
                    self.processes[n] = self._start(context, sock)
                    started_at[n] = time.monotonic()
        finally:
            self._stop_all()
            sock.close()
        return 0

    def _start(self, context: multiprocessing.context.SpawnContext, sock: socket.socket) -> BaseProcess:
        process = context.Process(
            target=run_worker,
            args=(self.settings, self.host, self.port, sock, os.getpid()),
            name="helpline-worker",
        )
        process.start()
        return process

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker %s did not stop in %.0f s; killing it", process.pid, STOP_TIMEOUT)
                process.kill()
                process.join(5)


def serve_workers(settings: Settings, host: str, port: int, count: int) -> int:
    """Run ``count`` workers until SIGTERM or SIGINT; ``check`` has passed (the CLI calls it first)."""
    from helpline.runner import log_like_uvicorn

    log_like_uvicorn()
    asyncio.run(prepare(settings))
    return Supervisor(settings, host, port, count).run()
