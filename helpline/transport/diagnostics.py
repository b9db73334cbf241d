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
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from helpline import events
from helpline.edge import problems
from helpline.errors import Unavailable
from helpline.events import EventType
from helpline.sse import encode_event, encode_preamble

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
) -> StreamingResponse:
    """A test stream for `helpline doctor`: timestamped probes, then an optional silent period."""
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
                await asyncio.sleep(quiet)
                yield probe(count + 1, "after_quiet")
        finally:
            gate.open -= 1

    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=HEADERS)
