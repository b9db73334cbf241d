"""``GET /api/v1/events/poll``: the long-poll fallback for networks where SSE stalls.

Same events, same ids, same order as the stream, because both read the same log through the same
resume logic; the only difference is that each answer ends the response.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from helpline.edge import Caller, problems, services
from helpline.transport.resume import channel_of, parse_event_id, replay
from helpline.transport.streaming import close_on_disconnect

router = APIRouter(prefix="/api/v1", tags=["events"])


class PollResponse(BaseModel):
    events: list[dict[str, Any]]
    last_event_id: str


@router.get("/events/poll", response_model=PollResponse, responses=problems(401, 403))
async def poll(
    request: Request,
    caller: Caller,
    after: Annotated[str | None, Query(max_length=40, description="the last event id the client has")] = None,
    timeout: Annotated[float, Query(ge=0, le=30)] = 20.0,
) -> Response:
    """Events after `after`; answers as soon as one exists, else after `timeout` seconds with none
    (held at most `poll_max_timeout_seconds`, 20 s by default: a client reading with hold + 5 s is never
    stranded by an idle cut of 25-30 s on the way)."""
    svc = services(request)
    registry = request.app.state.streams
    metrics = request.app.state.metrics
    channel = channel_of(caller)
    if caller.has("chat_rep"):
        await svc.router.rep_connected(caller.id)  # a polling rep is reachable too
    lease = await registry.admit(caller, "poll")
    metrics.poll_requests.inc()
    try:
        settings = svc.settings
        async with svc.bus.subscribe([channel], maxsize=settings.stream_queue_size, from_log=True) as subscription:
            registry.track(subscription, caller)
            watcher = asyncio.create_task(close_on_disconnect(request.receive, subscription))
            try:
                start = await replay(svc.store, caller, parse_event_id(after), settings.replay_limit)
                payloads = [e.payload for e in start.events]
                if start.reset is not None:
                    metrics.stream_resets.inc()
                    payloads = [start.reset.decode()]
                last_id = start.last_id
                if not payloads and timeout > 0:
                    envelopes = await subscription.wait(min(timeout, settings.poll_max_timeout_seconds))
                    if any(e.id is not None for e in envelopes):
                        # Re-read the log rather than trust arrival order: the log is the source of truth.
                        more = await replay(svc.store, caller, last_id, settings.replay_limit)
                        payloads = [e.payload for e in more.events]
                        last_id = more.last_id
                    payloads += [e.payload for e in envelopes if e.id is None]  # typing: live only
            finally:
                watcher.cancel()
                registry.untrack(subscription)
    finally:
        registry.release(caller, "poll", lease)
    metrics.events_delivered.labels("poll").inc(len(payloads))
    body = '{"events":[' + ",".join(payloads) + '],"last_event_id":"' + str(last_id) + '"}'
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
