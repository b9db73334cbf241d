"""Limits below the app, in the HTTP protocol: request heads, their deadline, connections, keep-alive.

A node exposed directly must survive what no ASGI app ever sees (issue 13): 1 MiB request heads and
10,000 header lines answered 200, a hundred unfinished 4 MiB heads grew a node by 380 MB, 2,000
slowloris sockets stayed open after 60 s, and with 1,024 descriptors 1,100 idle sockets locked every
user out. uvicorn's httptools protocol has no limit on a head's size or its number of lines and no
deadline for a head (its keep-alive timer runs only between requests), and h11's only bounds the size.
So the protocol here extends uvicorn's :class:`HttpToolsProtocol`:

- a request head over ``max_request_head_bytes`` (16 KiB) or ``max_request_headers`` lines (100) is
  answered ``431 request_header_too_large`` and the connection closed; raw bytes are counted as they
  arrive, so an unfinished head holds at most one read (64 KiB) beyond the limit;
- a head not complete within ``request_head_seconds`` (10 s) of its first byte, or of the connection's
  opening, closes the connection (slowloris);
- connections beyond ``max_connections`` per node (and never more than the descriptor limit allows)
  are answered ``503 unavailable``, beyond ``max_connections_per_address`` from one client address
  ``429 rate_limited``, both with ``Retry-After``, then closed. Trusted proxies (``--trusted-proxies``)
  carry many clients and are exempt from the per-address cap;
- idle keep-alive connections close after ``keepalive_seconds`` (uvicorn's own timer).

It overrides uvicorn's protocol callbacks and reads a few of its attributes. That is private API, so it
is confined to this one module, :func:`check_uvicorn` verifies at start-up that every name is still
there (the server refuses to start otherwise), and ``pyproject.toml`` bounds uvicorn's version.
"""

from __future__ import annotations

import asyncio
import http
import logging
import resource
from dataclasses import dataclass, field
from typing import Any

from helpline.config import ConfigurationError, Settings
from helpline.edge.clients import TrustedProxies
from helpline.edge.responses import NOSNIFF
from helpline.errors import PROBLEM_CONTENT_TYPE, HelplineError, RateLimited, Unavailable, problem_bytes

__all__ = ["EdgeLimits", "RequestHeaderTooLarge", "check_uvicorn", "protocol_class"]

logger = logging.getLogger("helpline.edge")

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
    HttpToolsProtocol = None  # type: ignore[assignment, misc]

# What this module relies on, checked by check_uvicorn(): methods it overrides or calls, and the
# attributes it reads on an instance.
USED_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
    "send_400_response",
)
USED_ATTRIBUTES = ("transport", "client", "connections", "parser", "headers")  # and ``url``, set per request
DESCRIPTORS_KEPT = 128  # for the database pool, Redis, log files and the listening sockets


class RequestHeaderTooLarge(HelplineError):
    status, code, title = 431, "request_header_too_large", "Request header fields too large"


@dataclass
class EdgeLimits:
    """The limits, and the connection counts every protocol instance of one server shares."""

    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    head_seconds: float = 10.0
    max_connections: int = 25_000
    max_per_address: int = 256
    proxies: TrustedProxies = field(default_factory=lambda: TrustedProxies(""))
    open_connections: int = 0
    per_address: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        allowed = settings.max_connections
        if soft != resource.RLIM_INFINITY:
            # Accepting a socket the process cannot keep would fail every user's next accept instead.
            allowed = min(allowed, max(16, soft - DESCRIPTORS_KEPT))
        return cls(
            max_head_bytes=settings.max_request_head_bytes,
            max_headers=settings.max_request_headers,
            head_seconds=settings.request_head_seconds,
            max_connections=allowed,
            max_per_address=settings.max_connections_per_address,
            proxies=TrustedProxies(settings.trusted_proxies),
        )

    def admit(self, address: str | None) -> HelplineError | None:
        """Count a new connection, or say why it is refused (it is then not counted)."""
        if self.open_connections >= self.max_connections:
            return Unavailable("this server holds as many connections as it may; retry shortly", retry_after=5)
        if address is not None and not self.proxies.trusts(address):
            if self.per_address.get(address, 0) >= self.max_per_address:
                return RateLimited("too many connections from this address; close some first", retry_after=10)
            self.per_address[address] = self.per_address.get(address, 0) + 1
        self.open_connections += 1
        return None

    def release(self, address: str | None) -> None:
        self.open_connections -= 1
        if address is not None and address in self.per_address:
            left = self.per_address[address] - 1
            if left > 0:
                self.per_address[address] = left
            else:
                del self.per_address[address]


def raw_problem(error: HelplineError) -> bytes:
    """A whole HTTP/1.1 problem response that closes the connection, for answers below the app."""
    body = problem_bytes(error)
    phrase = http.HTTPStatus(error.status).phrase
    lines = [
        f"HTTP/1.1 {error.status} {phrase}".encode(),
        b"content-type: " + PROBLEM_CONTENT_TYPE.encode(),
        b"content-length: " + str(len(body)).encode(),
        b": ".join(NOSNIFF),
        *(f"{name.lower()}: {value}".encode() for name, value in error.headers.items()),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a refused head."""


if HttpToolsProtocol is not None:

    class HelplineHttpProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with the limits of :class:`EdgeLimits` (see the module's doc)."""

        limits: EdgeLimits = EdgeLimits()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True  # reading a request head (or waiting for one's first byte)
            self._head_bytes = 0
            self._header_lines = 0
            self._head_timer: asyncio.TimerHandle | None = None
            self._refused = False
            self._admitted = False  # counted in limits (released when the connection ends)
            self._address: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = self.client[0] if self.client else None
            refusal = self.limits.admit(self._address)
            if refusal is not None:
                self._refuse(refusal)
                return
            self._admitted = True
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            if self._admitted:
                self._admitted = False
                self.limits.release(self._address)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_timer is None:
                    self._arm_head_timer()
            super().data_received(data)
            # Still in the head after this read: bound what the parser may buffer of it.
            if not self._refused and self._in_head and self._head_bytes > self.limits.max_head_bytes:
                self._refuse(self._too_large())

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_lines += 1
            if self._header_lines > self.limits.max_headers:
                self._refuse(self._too_large())
                raise _HeadRefused
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.limits.max_head_bytes:
                self._refuse(self._too_large())
                raise _HeadRefused
            self._in_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes, self._header_lines = True, 0, 0

        def send_400_response(self, msg: str) -> None:
            if not self._refused:  # a refusal of ours already answered (the parser reports our abort)
                super().send_400_response(msg)

        def _too_large(self) -> RequestHeaderTooLarge:
            limits = self.limits
            return RequestHeaderTooLarge(
                f"request heads are limited to {limits.max_head_bytes} bytes and {limits.max_headers} header lines"
            )

        def _refuse(self, error: HelplineError) -> None:
            self._refused = True
            self._cancel_head_timer()
            if not self.transport.is_closing():
                self.transport.write(raw_problem(error))
                self.transport.close()

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = asyncio.get_running_loop().call_later(self.limits.head_seconds, self._head_too_slow)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self._refused = True
                self.transport.close()  # slowloris, or a connection that never sent a request


def protocol_class(limits: EdgeLimits) -> type[Any]:
    """The protocol class for one server: its instances share ``limits``."""
    if HttpToolsProtocol is None:
        raise ConfigurationError("the HTTP edge needs httptools (pip install 'uvicorn[standard]')")
    return type("HelplineHttpProtocol", (HelplineHttpProtocol,), {"limits": limits})


def check_uvicorn(config: Any) -> None:
    """Refuse to start if uvicorn no longer has what :class:`HelplineHttpProtocol` relies on."""
    if HttpToolsProtocol is None:
        raise ConfigurationError("the HTTP edge needs httptools (pip install 'uvicorn[standard]')")
    missing = [name for name in USED_METHODS if not callable(getattr(HttpToolsProtocol, name, None))]
    if not missing:
        from uvicorn.server import ServerState

        loop = asyncio.new_event_loop()  # the probe schedules nothing on it
        try:
            probe = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={}, _loop=loop)
        finally:
            loop.close()
        missing = [name for name in USED_ATTRIBUTES if not hasattr(probe, name)]
        if not isinstance(probe.parser, httptools.HttpRequestParser):
            missing.append("parser (an httptools.HttpRequestParser)")
    if missing:
        raise ConfigurationError(
            "this uvicorn version lacks what Helpline's HTTP edge extends (helpline/edge/server.py): "
            + ", ".join(missing)
        )
