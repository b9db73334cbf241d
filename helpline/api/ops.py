"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from helpline.api import problems
from helpline.api.deps import services
from helpline.errors import HelplineError, Unavailable

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
        try:
            averages = await svc.ratings.averages()
            names = {q.id: q.name for q in await svc.accounts.queues()}
        except HelplineError:
            averages, names = {}, {}  # the database is away: the counters still answer
        for queue_id, (average, count) in averages.items():
            metrics.satisfaction.labels(names.get(queue_id, queue_id)).set(average)
            metrics.satisfaction_ratings.labels(names.get(queue_id, queue_id)).set(count)
    registry = metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
