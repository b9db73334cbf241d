"""A real webhook receiver: an HTTP server in the test process, on a free port, scripted per test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Records every request; ``answer(request) -> status`` decides each reply (200 by default).

    ``answer`` may also return ``(status, headers)``; it runs in the server's thread, so it may block
    (a receiver that hangs) without stopping the test's event loop.
    """

    def __init__(self, answer: Callable[[Received], Any] | None = None) -> None:
        self.answer = answer or (lambda _request: 200)
        self.requests: list[Received] = []
        self.requests_started = 0  # counted before ``answer`` runs (which may hang)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, 0)
                with receiver._lock:
                    receiver.requests_started += 1
                decided = receiver.answer(request)
                status, headers = decided if isinstance(decided, tuple) else (decided, {})
                request.status = status
                with receiver._lock:
                    receiver.requests.append(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client closing its keep-alive connection is not the test's business

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.requests)
