"""A tiny JSON-over-HTTP client for setting the stage (logins, customers, conversations).

Set-up is not measured, but at 20k customers it must still be quick, so requests run concurrently over
a few keep-alive :class:`~bench.protocol.HttpConnection` s instead of one at a time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bench.protocol import HttpConnection, build_request


class ApiError(RuntimeError):
    pass


class Api:
    def __init__(self, host: str, port: int, connections: int = 16) -> None:
        self.host, self.port = host, port
        self.size = connections
        self._idle: asyncio.Queue[HttpConnection] | None = None
        self._all: list[HttpConnection] = []

    async def _connection(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.size):
                _, conn = await loop.create_connection(HttpConnection, self.host, self.port)
                self._all.append(conn)
                self._idle.put_nowait(conn)
        conn = await self._idle.get()
        if conn.transport is None or conn.transport.is_closing():  # closed by the server's keep-alive timeout
            _, conn = await loop.create_connection(HttpConnection, self.host, self.port)
            self._all.append(conn)
        return conn

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        raw = b"" if body is None else json.dumps(body).encode()
        request = build_request(method, f"{self.host}:{self.port}", path, headers, raw)
        for _attempt in range(3):
            conn = await self._connection()
            status, answer = await conn.request(request)
            assert self._idle is not None
            self._idle.put_nowait(conn)
            if status == 0:
                continue  # the keep-alive connection closed under us; a fresh one is taken next time
            if status not in expect:
                raise ApiError(f"{method} {path} answered {status}: {answer[:300]!r}")
            return json.loads(answer) if answer else None
        raise ApiError(f"{method} {path}: connection lost three times")

    async def gather(self, calls: list[Any], concurrency: int = 64) -> list[Any]:
        """Run coroutines with at most ``concurrency`` in flight, keeping their order."""
        gate = asyncio.Semaphore(concurrency)

        async def one(call: Any) -> Any:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    def close(self) -> None:
        for conn in self._all:
            conn.close()
