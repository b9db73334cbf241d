"""API keys under /api/v1/admin/api-keys (``admin``): create (the key shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, StringConstraints

from helpline.api.admin import admin_principal
from helpline.api.schemas import PermissionName, Strict
from helpline.domain.api_keys import ApiKeys
from helpline.edge import problems, services

router = APIRouter(prefix="/api/v1/admin/api-keys", tags=["api keys"], dependencies=[Depends(admin_principal)])


def api_keys(request: Request) -> ApiKeys:
    return services(request).accounts.api_keys


ApiKeysDep = Annotated[ApiKeys, Depends(api_keys)]


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    permissions: Annotated[list[PermissionName], Field(min_length=1, max_length=5)]
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = Field(
        None, description="the key acts as this staff user (a bot), with at most that user's permissions"
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    permissions: list[str]
    user_id: str | None
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key (hlk_…): shown only here; send it as 'Authorization: Bearer …'")


@router.get("", response_model=list[ApiKeyOut], responses=problems(401, 403))
async def list_api_keys(keys: ApiKeysDep) -> list[dict[str, Any]]:
    return await keys.list()


@router.post("", status_code=201, response_model=ApiKeyCreated, responses=problems(401, 403, 404, 409))
async def create_api_key(body: ApiKeyCreate, keys: ApiKeysDep) -> dict[str, Any]:
    """Create a named key with a subset of the permissions; the answer holds the key, shown only once."""
    return await keys.create(body.name, list(body.permissions), user_id=body.user_id)


@router.delete("/{key_id}", response_model=ApiKeyOut, responses=problems(401, 403, 404))
async def revoke_api_key(key_id: Annotated[str, Path(max_length=40)], keys: ApiKeysDep) -> dict[str, Any]:
    """Revoke a key: refused from the next request on, on every node within a second."""
    return await keys.revoke(key_id=key_id)
