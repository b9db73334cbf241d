"""Webhook endpoints under /api/v1/admin/webhooks (``admin``): CRUD, secret rotation, log, test, redeliver."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from helpline.api import problems
from helpline.api.admin import admin_principal
from helpline.api.deps import services
from helpline.api.schemas import Strict
from helpline.domain.webhooks import Webhooks

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["webhooks"], dependencies=[Depends(admin_principal)])

WebhookId = Annotated[str, Path(max_length=40)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=48)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


def webhooks(request: Request) -> Webhooks:
    return services(request).webhooks


WebhooksDep = Annotated[Webhooks, Depends(webhooks)]


class WebhookCreate(Strict):
    url: Url
    events: Annotated[list[EventType], Field(min_length=1, max_length=50)]
    enabled: bool = True


class WebhookUpdate(Strict):
    url: Url | None = None
    events: Annotated[list[EventType], Field(min_length=1, max_length=50)] | None = None
    enabled: bool | None = None
    paused: bool | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    paused: bool
    consecutive_failures: int
    created_at: str
    updated_at: str
    pending: int | None = None


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="the signing secret: shown only here, store it now")


class DeliveryOut(BaseModel):
    id: int
    event_id: int | str | None
    event_type: str
    conversation_id: str | None
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    duration_ms: int | None
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: int | None


@router.get("", response_model=list[WebhookOut], responses=problems(401, 403))
async def list_webhooks(hooks: WebhooksDep) -> list[dict[str, Any]]:
    return await hooks.list()


@router.post("", status_code=201, response_model=WebhookWithSecret, responses=problems(401, 403))
async def create_webhook(body: WebhookCreate, hooks: WebhooksDep) -> dict[str, Any]:
    """Register an endpoint; the answer carries its signing secret, which is never shown again."""
    return await hooks.create(body.url, list(body.events), enabled=body.enabled)


@router.get("/{webhook_id}", response_model=WebhookOut, responses=problems(401, 403, 404))
async def get_webhook(webhook_id: WebhookId, hooks: WebhooksDep) -> dict[str, Any]:
    return await hooks.get(webhook_id)


@router.patch("/{webhook_id}", response_model=WebhookOut, responses=problems(401, 403, 404))
async def update_webhook(webhook_id: WebhookId, body: WebhookUpdate, hooks: WebhooksDep) -> dict[str, Any]:
    """Change the URL or events, disable, or resume a paused endpoint (``enabled: true`` or ``paused: false``)."""
    return await hooks.update(webhook_id, body.model_dump(exclude_none=True))


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=problems(401, 403, 404))
async def delete_webhook(webhook_id: WebhookId, hooks: WebhooksDep) -> Response:
    await hooks.delete(webhook_id)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookWithSecret, responses=problems(401, 403, 404))
async def rotate_secret(webhook_id: WebhookId, hooks: WebhooksDep) -> dict[str, Any]:
    """A new signing secret, shown once; every later attempt is signed with it."""
    return await hooks.rotate_secret(webhook_id)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, responses=problems(401, 403, 404))
async def list_deliveries(
    webhook_id: WebhookId,
    hooks: WebhooksDep,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """The delivery log, newest first: status, attempts, duration, the last error."""
    return await hooks.deliveries(webhook_id, before=before, limit=limit)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=problems(401, 403, 404, 409),
)
async def redeliver(
    webhook_id: WebhookId, delivery_id: Annotated[int, Path(ge=1)], hooks: WebhooksDep
) -> dict[str, Any]:
    """Send a finished delivery again (same event, same ``Helpline-Event-Id``)."""
    return await hooks.redeliver(webhook_id, delivery_id)


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryOut, responses=problems(401, 403, 404, 409))
async def send_test(webhook_id: WebhookId, hooks: WebhooksDep) -> dict[str, Any]:
    """Queue a signed ``webhook.test`` event for this endpoint; its outcome shows in the delivery log."""
    return await hooks.send_test(webhook_id)
