"""The load generator: several worker processes, each a uvloop event loop driven over a pipe.

Why processes: one Python process saturates one core long before a server does, and one process may
hold at most RLIMIT_NOFILE sockets (20,000 here), so 20k idle streams need their sockets spread out.
Each worker reports its own CPU time, so a reader can check that the generator was not the bottleneck.

A worker is told *what* to load (stream requests and conversations, as plain dicts built by
``bench/targets.py``), so the same code drives Helpline and nchan with the same shape of load.
Latency is measured from each message's *scheduled* send time (open loop), so a server that falls
behind shows up as latency instead of silently lowering the offered rate (coordinated omission).
``time.monotonic_ns`` is CLOCK_MONOTONIC, shared by every process on the machine, so a message
scheduled in one process can be timed on arrival in another.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.protocol import HttpConnection, SseStream

OPEN_TIMEOUT = 30.0


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the most an unprivileged process may)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stream_request(host: str, spec: dict[str, Any], last_id: bytes) -> bytes:
    headers = {"Accept": "text/event-stream", **spec["headers"]}
    if last_id:
        headers["Last-Event-ID"] = last_id.decode("latin-1")
    lines = [f"GET {spec['path']} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Delivery:
    """Per-stream record of one phase: first arrival time per message, and how many arrived again."""

    first: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0


@dataclass
class Phase:
    number: int
    deliveries: list[Delivery]
    latencies: array[int] = field(default_factory=lambda: array("q"))
    post_latencies: array[int] = field(default_factory=lambda: array("q"))
    acked: dict[int, int] = field(default_factory=dict)  # seq -> ack time
    failed: Counter[int] = field(default_factory=Counter)  # status (0: connection lost) -> count
    stale: int = 0
    unique: int = 0
    unsent: int = 0  # scheduled but shed because the server fell too far behind
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set on every first arrival


class Worker:
    def __init__(self, index: int, pipe: Connection) -> None:
        self.index = index
        self.pipe = pipe
        self.host = "127.0.0.1"
        self.port = 0
        self.stream_specs: list[dict[str, Any]] = []
        self.conversations: list[dict[str, Any]] = []
        self.streams: list[SseStream | None] = []
        self.last_ids: list[bytes] = []
        self.phase: Phase | None = None
        # Like a browser's EventSource, a stream the server ends is reopened with its Last-Event-ID;
        # these count how often that happened and how many stream.reset events arrived.
        self.server_closed = 0
        self.resets = 0
        self.marks: dict[str, float] = {}
        self._reopening: dict[int, asyncio.Task[tuple[bool, float]]] = {}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, self.pipe.recv)
            if command == "exit":
                await self.cmd_close_streams()
                self.pipe.send({})
                return
            cpu, wall = time.process_time(), time.monotonic()
            try:
                result = await getattr(self, f"cmd_{command}")(**args)
            except Exception as exc:  # reported to the coordinator, which fails the scenario loudly
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["cpu_seconds"] = time.process_time() - cpu
            result["wall_seconds"] = time.monotonic() - wall
            self.pipe.send(result)

    # -- set-up ---------------------------------------------------------------------------------
    async def cmd_configure(
        self, host: str, port: int, streams: list[dict[str, Any]], conversations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        await self.cmd_close_streams()
        self.host, self.port = host, port
        self.stream_specs, self.conversations = streams, conversations
        self.streams = [None] * len(streams)
        self.last_ids = [b""] * len(streams)
        return {"nofile": raise_nofile()}

    async def cmd_add_streams(self, streams: list[dict[str, Any]]) -> dict[str, Any]:
        self.stream_specs.extend(streams)
        self.streams.extend([None] * len(streams))
        self.last_ids.extend([b""] * len(streams))
        return {"streams": len(self.stream_specs)}

    async def _open(self, index: int, resume: bool) -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        spec = self.stream_specs[index]
        started = time.monotonic()
        for _attempt in range(3):
            try:
                _, stream = await loop.create_connection(
                    lambda: SseStream(index, self._on_message, self._on_reset), self.host, self.port
                )
            except OSError:
                await asyncio.sleep(0.2)
                continue
            assert stream.transport is not None
            stream.transport.write(stream_request(self.host, spec, self.last_ids[index] if resume else b""))
            try:
                ok = await asyncio.wait_for(asyncio.shield(stream.opened), OPEN_TIMEOUT)
            except TimeoutError:
                ok = False
            if ok:
                self.streams[index] = stream
                stream.closed.add_done_callback(lambda _f, i=index, s=stream: self._ended(i, s))
                return True, time.monotonic() - started
            stream.abort()
            await asyncio.sleep(0.2)
        return False, time.monotonic() - started

    async def cmd_open_streams(self, concurrency: int = 200, resume: bool = False) -> dict[str, Any]:
        """Open every stream not open yet (``resume``: each with the ``Last-Event-ID`` it last saw)."""
        todo = [
            i for i, s in enumerate(self.streams) if (s is None or s.transport is None) and i not in self._reopening
        ]
        gate = asyncio.Semaphore(concurrency)
        times: list[float] = []

        async def one(i: int) -> bool:
            async with gate:
                ok, seconds = await self._open(i, resume)
                times.append(seconds)
                return ok

        results = await asyncio.gather(*(one(i) for i in todo))
        times.sort()
        return {
            "opened": sum(results),
            "failed": len(results) - sum(results),
            "open_p50_ms": 1000 * times[len(times) // 2] if times else 0.0,
            "open_max_ms": 1000 * times[-1] if times else 0.0,
        }

    def _ended(self, index: int, stream: SseStream) -> None:
        if self.streams[index] is not stream:
            return  # closed by us
        self.streams[index] = None
        self.server_closed += 1
        self.last_ids[index] = stream.last_id or self.last_ids[index]
        task = asyncio.get_running_loop().create_task(self._open(index, True))
        self._reopening[index] = task
        task.add_done_callback(lambda _t: self._reopening.pop(index, None))

    async def cmd_close_streams(self) -> dict[str, Any]:
        streams = [s for s in self.streams if s is not None]
        self.streams = [None] * len(self.streams)
        for stream in streams:
            if stream.transport is not None:
                self.last_ids[stream.index] = stream.last_id or self.last_ids[stream.index]
            stream.abort()
        if streams:
            await asyncio.wait([s.closed for s in streams], timeout=10)
        return {"closed": len(streams)}

    async def cmd_stream_bytes(self) -> dict[str, Any]:
        """Bytes received so far on the open streams (the heartbeat cost: bench/heartbeats.py)."""
        open_streams = [s for s in self.streams if s is not None and s.transport is not None]
        return {"streams": len(open_streams), "bytes": sum(s.bytes_received for s in open_streams)}

    async def cmd_drop_streams(self) -> dict[str, Any]:
        """Abort every stream at once, remembering each one's last id for the reconnect."""
        return await self.cmd_close_streams()

    # -- delivery bookkeeping ---------------------------------------------------------------------
    def _on_reset(self, stream: SseStream) -> None:
        self.resets += 1

    def _on_message(self, stream: SseStream, phase: int, worker: int, seq: int, sent: int, now: int) -> None:
        self.last_ids[stream.index] = stream.last_id
        current = self.phase
        if current is None or phase != current.number or worker != self.index:
            if current is not None:
                current.stale += 1
            return
        record = current.deliveries[stream.index]
        if seq in record.first:
            record.duplicates += 1
            return
        record.first[seq] = now
        current.unique += 1
        current.progress.set()
        current.latencies.append(now - sent)

    # -- publishing -------------------------------------------------------------------------------
    def _message(self, phase: int, seq: int, sent: int) -> bytes:
        conversation = self.conversations[seq % len(self.conversations)]
        side = (seq // len(self.conversations)) % 2  # customer and rep take turns
        marker = f"M{phase}_{self.index}_{seq}_{sent}"
        body = (conversation["body"] % marker).encode()
        head = conversation["publish"][side]
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body

    async def _publish(
        self, phase: Phase, rate: float, duration: float, start_at: float, pool_size: int, grace: float = 3.0
    ) -> float:
        """Offer ``rate`` messages/s for ``duration`` s from ``start_at``; return when all are answered."""
        loop = asyncio.get_running_loop()
        if rate <= 0 or not self.conversations:
            await asyncio.sleep(max(0.0, start_at + duration - time.monotonic()))
            return time.monotonic()
        pool: list[HttpConnection] = []
        for _ in range(pool_size):
            _, conn = await loop.create_connection(HttpConnection, self.host, self.port)
            pool.append(conn)
        idle = list(pool)
        backlog: deque[int] = deque()
        total = int(rate * duration)
        interval = 1e9 / rate if rate > 0 else 0.0
        start_ns = int(start_at * 1e9)
        in_flight = 0
        finished = loop.create_future()
        reconnecting: set[asyncio.Task[None]] = set()

        def dispatch() -> None:
            nonlocal in_flight
            while idle and backlog:
                conn = idle.pop()
                seq = backlog.popleft()
                sent = start_ns + int(seq * interval)
                in_flight += 1
                conn.send(self._message(phase.number, seq, sent), lambda s, b, c=conn, q=seq, t=sent: done(c, q, t, s))

        def done(conn: HttpConnection, seq: int, sent: int, status: int) -> None:
            nonlocal in_flight
            in_flight -= 1
            now = time.monotonic_ns()
            if 200 <= status < 300:
                phase.acked[seq] = now
                phase.post_latencies.append(now - sent)
            else:
                phase.failed[status] += 1
            if status == 0 or conn.transport is None:
                task = loop.create_task(reconnect())
                reconnecting.add(task)
                task.add_done_callback(reconnecting.discard)
            else:
                idle.append(conn)
            dispatch()
            if scheduled >= total and not backlog and in_flight == 0 and not finished.done():
                finished.set_result(None)

        async def reconnect() -> None:
            try:
                _, conn = await loop.create_connection(HttpConnection, self.host, self.port)
            except OSError:
                return
            idle.append(conn)
            dispatch()

        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        scheduled = 0
        while scheduled < total:
            due = min(total, int((time.monotonic_ns() - start_ns) / interval) + 1)
            backlog.extend(range(scheduled, due))
            scheduled = due
            dispatch()
            await asyncio.sleep(0.001)
        if in_flight or backlog:
            # A server that fell behind gets ``grace`` seconds to catch up; whatever was never sent after
            # that is shed (counted, never expected), so one overloaded phase cannot stall the run.
            try:
                await asyncio.wait_for(asyncio.shield(finished), timeout=grace)
            except TimeoutError:
                phase.unsent += len(backlog)
                backlog.clear()
                if in_flight == 0 and not finished.done():
                    finished.set_result(None)
                try:
                    await asyncio.wait_for(finished, timeout=30)
                except TimeoutError:
                    phase.failed[-1] += in_flight
        ended = time.monotonic()
        for conn in pool:
            conn.close()
        return ended

    async def _drain(self, phase: Phase, timeout: float) -> None:
        """Wait until every acknowledged message reached both its streams, or ``timeout``."""
        expected = 2 * len(phase.acked)
        deadline = time.monotonic() + timeout
        while phase.unique < expected:
            phase.progress.clear()
            try:
                await asyncio.wait_for(phase.progress.wait(), deadline - time.monotonic())
            except TimeoutError:
                return

    def _summary(self, phase: Phase, started: float, ended: float) -> dict[str, Any]:
        lost = 0
        examples = []  # a few lost deliveries, for the post-mortem: which stream, which message, when
        for seq, acked_at in phase.acked.items():
            streams = self.conversations[seq % len(self.conversations)]["streams"]
            for side, stream in zip(("customer", "rep"), streams, strict=True):
                if seq not in phase.deliveries[stream].first:
                    lost += 1
                    if len(examples) < 10:
                        got = sorted(phase.deliveries[stream].first)
                        examples.append(
                            {
                                "stream": stream,
                                "side": side,
                                "seq": seq,
                                "acked_at": acked_at / 1e9,
                                "stream_received": len(got),
                                "stream_last_id": self.last_ids[stream].decode("latin-1"),
                            }
                        )
        server_closed, resets = self.server_closed, self.resets
        self.server_closed = self.resets = 0
        return {
            "lost_examples": examples,
            "server_closed": server_closed,
            "resets": resets,
            "acked": len(phase.acked),
            "failed": dict(phase.failed),
            "expected": 2 * len(phase.acked),
            "delivered": phase.unique,
            "lost": lost,
            "duplicated": sum(d.duplicates for d in phase.deliveries),
            "stale": phase.stale,
            "unsent": phase.unsent,
            "publish_seconds": ended - started,
            "latencies": phase.latencies.tobytes(),
            "post_latencies": phase.post_latencies.tobytes(),
        }

    async def cmd_chat(
        self, phase: int, rate: float, duration: float, start_at: float, pool: int = 32, drain: float = 5.0
    ) -> dict[str, Any]:
        self.phase = current = Phase(phase, [Delivery() for _ in self.stream_specs])
        self.server_closed = self.resets = 0
        ended = await self._publish(current, rate, duration, start_at, pool)
        await self._drain(current, drain)
        self.phase = None
        return self._summary(current, start_at, ended)

    async def cmd_resume(
        self,
        phase: int,
        rate: float,
        duration: float,
        start_at: float,
        drop_at: float,
        down_for: float,
        pool: int = 32,
        drain: float = 30.0,
    ) -> dict[str, Any]:
        """Chat at ``rate`` while every stream drops at ``drop_at`` and reconnects ``down_for`` s later."""
        self.phase = current = Phase(phase, [Delivery() for _ in self.stream_specs])
        self.server_closed = self.resets = 0
        publisher = asyncio.create_task(self._publish(current, rate, duration, start_at, pool))
        await asyncio.sleep(max(0.0, drop_at - time.monotonic()))
        await self.cmd_close_streams()
        await asyncio.sleep(max(0.0, drop_at + down_for - time.monotonic()))
        reconnect_ns = time.monotonic_ns()
        self.marks = {"drop": drop_at, "reconnect": reconnect_ns / 1e9}
        reopened = await self.cmd_open_streams(resume=True)
        reopened_ns = time.monotonic_ns()
        ended = await publisher
        await self._drain(current, drain)
        self.phase = None
        # Caught up: every message acknowledged before the reconnect began has reached every stream.
        caught_up = reconnect_ns
        missing = 0
        for seq, acked_at in current.acked.items():
            if acked_at > reconnect_ns:
                continue
            for stream in self.conversations[seq % len(self.conversations)]["streams"]:
                arrived = current.deliveries[stream].first.get(seq)
                if arrived is None:
                    missing += 1
                else:
                    caught_up = max(caught_up, arrived)
        summary = self._summary(current, start_at, ended)
        summary.update(
            marks=self.marks,
            reopened=reopened["opened"],
            reopen_failed=reopened["failed"],
            reconnect_seconds=(reopened_ns - reconnect_ns) / 1e9,
            catch_up_seconds=(caught_up - reconnect_ns) / 1e9,
            catch_up_missing=missing,
        )
        return summary


def _worker_main(index: int, pipe: Connection) -> None:
    import uvloop

    raise_nofile()
    uvloop.run(Worker(index, pipe).serve())


class WorkerPool:
    """The coordinator's handle on the worker processes (spawned, so none inherits an event loop)."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for index in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_worker_main, args=(index, theirs), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.pipes)

    async def call(self, command: str, per_worker: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        """Send one command to every worker (``per_worker``: each its own arguments) and gather answers."""
        loop = asyncio.get_running_loop()
        args = per_worker if isinstance(per_worker, list) else [per_worker] * len(self.pipes)
        for pipe, arg in zip(self.pipes, args, strict=True):
            pipe.send((command, arg))
        results = await asyncio.gather(*(loop.run_in_executor(None, pipe.recv) for pipe in self.pipes))
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise RuntimeError(f"worker failed in {command}: {errors[0]}")
        return list(results)

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("exit", {}))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
