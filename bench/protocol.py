"""HTTP/1.1 and SSE clients as raw asyncio protocols (issue 5: the generator must not be the bottleneck).

A general HTTP client library spends more CPU per request than the server under test does, which would
make the benchmark measure the client. These protocols do the least that is correct for the two servers
we drive (Helpline behind uvicorn, and nginx/nchan): keep-alive requests with one in flight per
connection, ``Content-Length`` or chunked bodies, and an incremental SSE reader that only looks for the
fields the benchmark needs (``id:`` and the message marker inside ``data:``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import cast

# Every benchmark message carries this marker in its client id (Helpline) or body (nchan):
# M<phase>_<worker>_<seq>_<scheduled monotonic ns>. One regex finds it in either server's framing.
MARKER = re.compile(rb"M(\d+)_(\d+)_(\d+)_(\d+)")

ResponseCallback = Callable[[int, bytes], None]


def build_request(method: str, host: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One HTTP/1.1 request as bytes; callers build it once and reuse it where they can."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder: feed bytes, get the payload bytes so far."""

    __slots__ = ("_buffer", "_remaining", "done")

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # payload bytes still due in the current chunk; -1 while a CRLF is due
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer + data
        out: list[bytes] = []
        position = 0
        while position < len(buffer):
            if self._remaining > 0:
                take = buffer[position : position + self._remaining]
                out.append(take)
                self._remaining -= len(take)
                position += len(take)
                if self._remaining == 0:
                    self._remaining = -1
                continue
            if self._remaining == -1:
                if len(buffer) - position < 2:
                    break
                position += 2
                self._remaining = 0
                continue
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            size = int(buffer[position:end].split(b";", 1)[0], 16)
            position = end + 2
            if size == 0:
                self.done = True
                position = len(buffer)
                break
            self._remaining = size
        self._buffer = buffer[position:]
        return b"".join(out)


class HttpConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with at most one request in flight, completed by callback."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._callback: ResponseCallback | None = None
        self._buffer = b""
        self._status = 0
        self._length = -1
        self._chunked: ChunkedDecoder | None = None
        self._body: list[bytes] = []
        self._in_body = False

    @property
    def busy(self) -> bool:
        return self._callback is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(0, b"")
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, request: bytes, callback: ResponseCallback) -> None:
        """Write ``request``; ``callback(status, body)`` runs on the response (status 0: connection lost)."""
        if self.transport is None or self.transport.is_closing():
            callback(0, b"")
            return
        self._callback = callback
        self._buffer, self._in_body, self._body = b"", False, []
        self.transport.write(request)

    async def request(self, request: bytes) -> tuple[int, bytes]:
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.send(request, lambda status, body: future.done() or future.set_result((status, body)))
        return await future

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._buffer[:end], self._buffer[end + 4 :]
            self._buffer = b""
            self._parse_head(head)
            self._in_body = True
        if self._chunked is not None:
            self._body.append(self._chunked.feed(data))
            if self._chunked.done:
                self._complete()
        else:
            self._body.append(data)
            if sum(map(len, self._body)) >= self._length:
                self._complete()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self._status = int(lines[0].split(b" ", 2)[1])
        self._length, self._chunked = 0, None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = ChunkedDecoder()

    def _complete(self) -> None:
        callback, self._callback = self._callback, None
        self._in_body = False
        body = b"".join(self._body)
        self._body = []
        if callback is not None:
            callback(self._status, body)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


MessageCallback = Callable[["SseStream", int, int, int, int, int], None]
ResetCallback = Callable[["SseStream"], None]


class SseStream(asyncio.Protocol):
    """One event stream. Calls ``on_message(stream, phase, worker, seq, sent_ns, received_ns)`` per marker.

    It remembers the last ``id:`` seen, which is what a browser sends back as ``Last-Event-ID``.
    """

    def __init__(self, index: int, on_message: MessageCallback, on_reset: ResetCallback | None = None) -> None:
        self.index = index
        self.on_message = on_message
        self.on_reset = on_reset
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.status = 0
        self.last_id: bytes = b""
        self.events = 0
        self.bytes_received = 0  # everything after the connection opened, headers included
        self._head = b""
        self._in_body = False
        self._chunked: ChunkedDecoder | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.closed.done():
            self.closed.set_result(None)

    def abort(self) -> None:
        """Drop the connection without a goodbye, like a phone losing its network."""
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.bytes_received += len(data)
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            lines = head.split(b"\r\n")
            self.status = int(lines[0].split(b" ", 2)[1])
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    self._chunked = ChunkedDecoder()
            self._in_body = True
            if not self.opened.done():
                self.opened.set_result(self.status == 200)
            if self.status != 200:
                self.abort()
                return
        if self._chunked is not None:
            data = self._chunked.feed(data)
        self._feed(data, now)

    def _feed(self, data: bytes, now: int) -> None:
        buffer = self._buffer + data
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            if block.startswith(b":"):
                continue  # a comment: padding or heartbeat
            self.events += 1
            id_at = block.find(b"id:")
            if id_at == 0 or (id_at > 0 and block[id_at - 1] == 0x0A):
                line_end = block.find(b"\n", id_at)
                self.last_id = block[id_at + 3 : line_end if line_end >= 0 else len(block)].strip()
            if self.on_reset is not None and b"event: stream.reset" in block:
                self.on_reset(self)  # the server could not honour Last-Event-ID: a gap it admits
            found = MARKER.search(block)
            if found is not None:
                phase, worker, seq, sent = (int(g) for g in found.groups())
                self.on_message(self, phase, worker, seq, sent, now)
        self._buffer = buffer[start:]
