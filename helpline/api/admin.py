"""Admin resources under /api/v1/admin: users, queues, deployments (``admin`` permission)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from helpline.api import problems
from helpline.api.deps import AccountsDep, current_principal
from helpline.api.schemas import (
    DeploymentCreate,
    DeploymentOut,
    QueueCreate,
    QueueOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from helpline.domain.models import Principal
from helpline.domain.permissions import Permission, require


async def admin_principal(caller: Annotated[Principal, Depends(current_principal)]) -> Principal:
    require(caller, Permission.ADMIN)
    return caller


router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(admin_principal)])
UserId = Annotated[str, Path(max_length=40)]


@router.get("/users", response_model=list[UserOut], responses=problems(401, 403))
async def list_users(accounts: AccountsDep) -> list[dict[str, Any]]:
    return [u.public() for u in await accounts.users()]


@router.post("/users", status_code=201, response_model=UserOut, responses=problems(401, 403, 409))
async def create_user(body: UserCreate, accounts: AccountsDep) -> dict[str, Any]:
    user = await accounts.create_user(
        body.username,
        body.password,
        list(body.permissions),
        display_name=body.display_name,
        max_concurrent=body.max_concurrent,
    )
    return user.public()


@router.get("/users/{user_id}", response_model=UserOut, responses=problems(401, 403, 404))
async def get_user(user_id: UserId, accounts: AccountsDep) -> dict[str, Any]:
    return (await accounts.user(user_id)).public()


@router.patch("/users/{user_id}", response_model=UserOut, responses=problems(401, 403, 404))
async def update_user(user_id: UserId, body: UserUpdate, accounts: AccountsDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    return (await accounts.update_user(user_id, changes)).public()


@router.get("/queues", response_model=list[QueueOut], responses=problems(401, 403))
async def list_queues(accounts: AccountsDep) -> list[dict[str, Any]]:
    return [q.public() for q in await accounts.queues()]


@router.post("/queues", status_code=201, response_model=QueueOut, responses=problems(401, 403, 409))
async def create_queue(body: QueueCreate, accounts: AccountsDep) -> dict[str, Any]:
    return (await accounts.create_queue(body.name)).public()


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
    )
    return deployment.public()
