"""``GET /api/v1/diagnostics/stream``: a short, credential-free test stream for ``helpline doctor``.

It is framed exactly like the real stream (same headers, padding, ``retry:``) and sends ``count``
probe events ``interval`` seconds apart, each stamped with the server's clock, then optionally stays
silent for ``quiet`` seconds (no heartbeats) before a last probe. A client can tell from the arrival
times what the network does to SSE: events arriving in one burst mean something buffers the stream;
a cut during the quiet period means an idle timeout; a ``Content-Encoding`` or missing headers mean a
proxy rewrites responses. It carries no data, so it needs no credentials; it is capped per node and
bounded in time so it cannot be used to hold connections open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from helpline import events
from helpline.edge import problems
from helpline.errors import Unavailable, ValidationFailed
from helpline.events import EventType
from helpline.sse import encode_event, encode_preamble
from helpline.verdicts import VERDICTS, Verdict, judge

router = APIRouter(prefix="/api/v1/diagnostics", tags=["diagnostics"])
MAX_CONCURRENT = 20
HEADERS = {
    "Cache-Control": "no-cache, no-store, no-transform",
    "X-Accel-Buffering": "no",
    "X-Helpline-Diagnostics": "1",  # lets the doctor see whether a proxy strips our headers
}


class DiagnosticsGate:
    def __init__(self) -> None:
        self.open = 0


def probe(n: int, phase: str) -> bytes:
    body = events.encode(EventType.DIAGNOSTICS_PROBE, None, {"n": n, "phase": phase, "server_time": time.time()})
    return encode_event(body, event=EventType.DIAGNOSTICS_PROBE, id=n)


@router.get(
    "/stream",
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **problems(503)},
    response_class=StreamingResponse,
)
async def diagnostics_stream(
    request: Request,
    count: Annotated[int, Query(ge=1, le=10)] = 5,
    interval: Annotated[float, Query(ge=0.1, le=5)] = 1.0,
    quiet: Annotated[float, Query(ge=0, le=45)] = 0.0,
    heartbeat: Annotated[float, Query(ge=0, le=30, description="heartbeat events this often while quiet")] = 0.0,
) -> StreamingResponse:
    """A test stream for `helpline doctor` and `/diagnostics`: timestamped probes, then an optional quiet period.

    During the quiet period the stream is silent, or (with `heartbeat`) carries only `diagnostics.heartbeat`
    events: a path that cuts the silent stream but keeps the other is one that heartbeats keep open.
    """
    gate: DiagnosticsGate = request.app.state.diagnostics
    if gate.open >= MAX_CONCURRENT:
        raise Unavailable("too many diagnostic streams running; retry shortly", retry_after=10)
    settings = request.app.state.settings

    async def body() -> AsyncIterator[bytes]:
        gate.open += 1  # counted from inside the body, so a client gone before it starts leaks nothing
        try:
            yield encode_preamble(settings.stream_padding_bytes, settings.retry_milliseconds) + probe(0, "open")
            for n in range(1, count + 1):
                await asyncio.sleep(interval)
                yield probe(n, "timed")
            if quiet > 0:
                deadline = time.monotonic() + quiet
                while heartbeat > 0 and deadline - time.monotonic() > heartbeat:
                    await asyncio.sleep(heartbeat)
                    heartbeat_body = events.encode(EventType.DIAGNOSTICS_HEARTBEAT, None, {"server_time": time.time()})
                    yield encode_event(heartbeat_body, event=EventType.DIAGNOSTICS_HEARTBEAT)
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                yield probe(count + 1, "after_quiet")
        finally:
            gate.open -= 1

    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=HEADERS)


class PollAnswer(BaseModel):
    server_time: float
    held_seconds: float


@router.get("/poll", response_model=PollAnswer, responses=problems(422))
async def diagnostics_poll(hold: Annotated[float, Query(ge=0, le=5)] = 1.0) -> dict[str, float]:
    """A long-poll stand-in: answers after `hold` seconds, so a client can see a held response get through."""
    await asyncio.sleep(hold)
    return {"server_time": time.time(), "held_seconds": hold}


@router.get("/verdicts")
async def verdict_list() -> list[dict[str, str]]:
    """Every verdict the diagnostics can reach, worst first (shared by `helpline doctor` and `/diagnostics`)."""
    return [v.public() for v in VERDICTS]


class Observation(BaseModel):
    """What a client measured (see docs/deployment.md, "Diagnosing from the browser")."""

    model_config = ConfigDict(extra="allow")
    reachable: bool
    eventsource: dict[str, Any] | None = None
    fetch: dict[str, Any] | None = None
    idle: dict[str, Any] | None = None
    heartbeat: dict[str, Any] | None = None
    poll: dict[str, Any] | None = None


@router.post("/verdict", responses=problems(400, 413, 422))
async def verdict_for(observation: Observation) -> dict[str, str]:
    """The verdict for an observation: the same judge as `helpline doctor`."""
    try:
        verdict: Verdict = judge(observation.model_dump())
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationFailed(f"malformed observation: {exc}") from None
    return verdict.public()
