"""Admin resources under /api/v1/admin: users, queues, deployments (``admin`` permission)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from helpline.api import problems
from helpline.api.deps import AccountsDep, current_principal, services
from helpline.api.schemas import (
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    QueueCreate,
    QueueOut,
    QueueUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)
from helpline.domain.permissions import Permission, require
from helpline.records import Principal


async def admin_principal(caller: Annotated[Principal, Depends(current_principal)]) -> Principal:
    require(caller, Permission.ADMIN)
    return caller


router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(admin_principal)])
UserId = Annotated[str, Path(max_length=40)]


@router.get("/users", response_model=list[UserOut], responses=problems(401, 403))
async def list_users(accounts: AccountsDep) -> list[dict[str, Any]]:
    return [await accounts.describe(u) for u in await accounts.users()]


@router.post("/users", status_code=201, response_model=UserOut, responses=problems(401, 403, 409))
async def create_user(body: UserCreate, accounts: AccountsDep) -> dict[str, Any]:
    user = await accounts.create_user(
        body.username,
        body.password,
        list(body.permissions),
        display_name=body.display_name,
        max_concurrent=body.max_concurrent,
        queue_ids=list(body.queue_ids),
    )
    return await accounts.describe(user)


@router.get("/users/{user_id}", response_model=UserOut, responses=problems(401, 403, 404))
async def get_user(user_id: UserId, accounts: AccountsDep) -> dict[str, Any]:
    return await accounts.describe(await accounts.user(user_id))


@router.patch("/users/{user_id}", response_model=UserOut, responses=problems(401, 403, 404))
async def update_user(user_id: UserId, body: UserUpdate, accounts: AccountsDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    return await accounts.describe(await accounts.update_user(user_id, changes))


@router.get("/queues", response_model=list[QueueOut], responses=problems(401, 403))
async def list_queues(accounts: AccountsDep) -> list[dict[str, Any]]:
    return [q.public() for q in await accounts.queues()]


@router.post("/queues", status_code=201, response_model=QueueOut, responses=problems(401, 403, 409))
async def create_queue(body: QueueCreate, accounts: AccountsDep) -> dict[str, Any]:
    return (await accounts.create_queue(body.name)).public()


@router.patch("/queues/{queue_id}", response_model=QueueOut, responses=problems(401, 403, 404, 409))
async def update_queue(
    queue_id: Annotated[str, Path(max_length=40)], body: QueueUpdate, accounts: AccountsDep
) -> dict[str, Any]:
    """Rename a queue or set its wrap-up dispositions (what reps pick from when closing)."""
    return (await accounts.update_queue(queue_id, body.model_dump(exclude_none=True))).public()


@router.get("/deployments", response_model=list[DeploymentOut], responses=problems(401, 403))
async def list_deployments(accounts: AccountsDep) -> list[dict[str, Any]]:
    return [d.public() for d in await accounts.deployments()]


@router.post("/deployments", status_code=201, response_model=DeploymentOut, responses=problems(401, 403, 404, 409))
async def create_deployment(body: DeploymentCreate, accounts: AccountsDep) -> dict[str, Any]:
    deployment = await accounts.create_deployment(
        body.key,
        body.queue,
        list(body.allowed_origins),
        pre_chat_fields=[f.model_dump() for f in body.pre_chat_fields],
        identity_key=body.identity_key,
        business_hours=body.business_hours.model_dump() if body.business_hours else None,
        greeting=body.greeting,
        attachment_max_bytes=body.attachment_max_bytes,
        attachment_types=list(body.attachment_types) if body.attachment_types is not None else None,
    )
    return deployment.public()


@router.patch("/deployments/{deployment_id}", response_model=DeploymentOut, responses=problems(401, 403, 404))
async def update_deployment(
    deployment_id: Annotated[str, Path(max_length=40)], body: DeploymentUpdate, accounts: AccountsDep
) -> dict[str, Any]:
    """Change a deployment's origins, pre-chat form, business hours or greeting (an empty greeting removes it)."""
    changes = body.model_dump(exclude_unset=True)
    if "pre_chat_fields" in changes and changes["pre_chat_fields"] is None:
        del changes["pre_chat_fields"]
    if changes.get("allowed_origins") is None:
        changes.pop("allowed_origins", None)
    if changes.get("greeting") == "":
        changes["greeting"] = None
    return (await accounts.update_deployment(deployment_id, changes)).public()


@router.delete("/customers/{customer_id}", responses=problems(401, 403, 404, 503))
async def erase_customer(
    customer_id: Annotated[str, Path(max_length=40)],
    request: Request,
    caller: Annotated[Principal, Depends(admin_principal)],
) -> dict[str, Any]:
    """Erase a customer: its conversations (events, attachments, deliveries) and personal data.

    Answers the audit entry that remains: who, by whom, when and how much, never the content. 503 while
    the database's migrations are behind.
    """
    return await services(request).retention.erase_customer(customer_id, requested_by=f"user:{caller.id}")
