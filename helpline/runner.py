"""Running the server: uvicorn, with our own graceful shutdown for streams.

On SIGTERM/SIGINT uvicorn stops accepting and waits for open responses to finish; an event stream never
finishes by itself, so first we end every stream with ``stream.reconnect`` (clients move to another
node, or retry this one when it is back). That is done by extending ``uvicorn.Server.handle_exit``,
its documented hook, not by patching it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.handlers
import queue
import re
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from helpline.edge.server import EdgeLimits, check_uvicorn, protocol_class

SECRET_QUERY = re.compile(r"((?:ticket|access_token|token)=)[^&\s\"]+")


class RedactSecrets(logging.Filter):
    """Hide stream tickets (and any token someone put in a URL) from access logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(SECRET_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = SECRET_QUERY.sub(r"\1[redacted]", record.msg)
        return True


class HelplineServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, *, freeze_startup_heap: bool = False) -> None:
        super().__init__(config)
        self.helpline_app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.freeze_startup_heap = freeze_startup_heap

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.freeze_startup_heap:
            # What exists once the app has started (modules, FastAPI's routes and pydantic validators,
            # SQLAlchemy's tables: ~120,000 objects) lives as long as the process. A full collection over
            # it took ~60 ms, a stall every stream and message in flight waited out (bench/RESULTS.md);
            # frozen, the collector no longer walks it. Only for a process that is the server (the CLI):
            # a test process starting many apps would keep each one's garbage forever.
            gc.collect()
            gc.freeze()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()  # so another thread can ask for a graceful stop
        logs_requests = self.config.access_log
        access_log = log_off_the_loop(logging.getLogger("uvicorn.access")) if logs_requests else None
        try:
            await super().serve(sockets)
        finally:
            if access_log is not None:
                access_log.stop()  # writes out what is queued

    def stop_gracefully(self) -> None:
        """Thread-safe: what SIGTERM does (streams end with stream.reconnect, then the server exits)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.handle_exit, signal.SIGTERM, None)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        streams = getattr(self.helpline_app.state, "streams", None)
        if streams is not None and not streams.shutting_down:
            loop = asyncio.get_event_loop()
            task = loop.create_task(streams.shutdown())
            task.add_done_callback(lambda _t: super(HelplineServer, self).handle_exit(sig, frame))
            return
        super().handle_exit(sig, frame)


class _Enqueue(logging.handlers.QueueHandler):
    """Queue the record as it is: uvicorn's access formatter reads ``record.args``, which the stock
    ``prepare`` would merge into the message (the args are plain strings and numbers, safe to hand on)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def log_off_the_loop(logger: logging.Logger) -> logging.handlers.QueueListener | None:
    """Move ``logger``'s handlers to a thread: the event loop only queues the record.

    uvicorn writes an access-log line per request from the event loop; formatting it and writing it to
    stderr was about a quarter of the CPU of opening a stream (bench/RESULTS.md). The record is still
    filtered (secrets redacted) on the loop and formatted by the same handlers, so what is logged is
    unchanged; stopping the listener writes out whatever is still queued.
    """
    handlers = [h for h in logger.handlers if not isinstance(h, logging.handlers.QueueHandler)]
    if not handlers or not logger.isEnabledFor(logging.INFO):
        return None
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    logger.handlers = [_Enqueue(records)]
    listener.start()
    return listener


def log_like_uvicorn() -> None:
    """A server process's own messages (``helpline.*`` at INFO and above) go to stderr beside uvicorn's.

    For processes that are the server only (the CLI, each worker): a test process keeps pytest's capture.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")


def build_server(
    app: FastAPI, host: str, port: int, *, freeze_startup_heap: bool = False, **options: Any
) -> HelplineServer:
    settings = app.state.settings
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        # Our protocol: uvicorn's httptools one with limits on request heads and connections.
        http=protocol_class(EdgeLimits.from_settings(settings)),
        # The client's address comes from helpline/edge/clients.py (--trusted-proxies), never from uvicorn.
        proxy_headers=False,
        timeout_keep_alive=settings.keepalive_seconds,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
        log_level=options.pop("log_level", "info"),
        **options,
    )
    check_uvicorn(config)
    logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
    return HelplineServer(config, app, freeze_startup_heap=freeze_startup_heap)
