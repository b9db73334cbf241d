"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from helpline.api import problems
from helpline.api.deps import services
from helpline.errors import HelplineError, Unavailable
from helpline.metrics import Metrics
from helpline.records import Presence

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (it does not look at the database or the bus)."""
    return {"status": "ok"}


@router.get("/readyz", responses=problems(503))
async def readyz(request: Request) -> dict[str, Any]:
    """Ready for traffic: the store answers. A shared bus that is down makes the node ``degraded``, not
    unready: its streams are served from the log (domain/delivery.py), only later than usual."""
    svc = services(request)
    try:
        await svc.store.ping()
    except HelplineError as exc:
        raise Unavailable(f"not ready: {exc.detail}", retry_after=5) from None
    try:
        await svc.bus.ping()
    except Exception:  # HelplineError or a bus driver error: either way the wake-up is missing
        return {"status": "degraded", "bus": "down: streams are served from the log"}
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    metrics = request.app.state.metrics
    svc = getattr(request.app.state, "services", None)
    if svc is not None:
        metrics.write_path(svc.store.commits.figures())
        try:
            averages = await svc.ratings.averages()
            queues = await svc.router.queue_stats()  # the wallboard's figures, so the two always agree
        except HelplineError:
            averages, queues = {}, []  # the database is away: the counters still answer
        names = {q["queue_id"]: q["name"] for q in queues}
        for queue_id, (average, count) in averages.items():
            metrics.satisfaction.labels(names.get(queue_id, queue_id)).set(average)
            metrics.satisfaction_ratings.labels(names.get(queue_id, queue_id)).set(count)
        if queues:
            contact_center(metrics, queues)
    registry = metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def contact_center(metrics: Metrics, queues: list[dict[str, Any]]) -> None:
    """Waiting and longest wait per queue, and reps by presence (each rep once, whatever its queues)."""
    metrics.queue_waiting.clear()  # a deleted or renamed queue leaves no stale series
    metrics.queue_longest_wait.clear()
    presence: dict[str, str] = {}
    for queue in queues:
        metrics.queue_waiting.labels(queue["name"]).set(queue["waiting"])
        metrics.queue_longest_wait.labels(queue["name"]).set(queue["longest_wait_seconds"])
        presence.update({rep["id"]: rep["presence"] for rep in queue["reps"]})
    for state in get_args(Presence):
        metrics.reps.labels(state).set(sum(1 for p in presence.values() if p == state))
