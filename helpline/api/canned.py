"""Canned responses: ``/api/v1/canned-responses`` (read: reps; shared ones written by supervisors and admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from helpline.api import problems
from helpline.api.deps import Caller, CannedDep
from helpline.api.schemas import CannedCreate, CannedOut, CannedUpdate

router = APIRouter(prefix="/api/v1/canned-responses", tags=["canned responses"])
CannedId = Annotated[str, Path(max_length=40)]


@router.get("", response_model=list[CannedOut], responses=problems(401, 403))
async def list_canned(caller: Caller, canned: CannedDep) -> list[dict[str, Any]]:
    """The shared responses and the caller's personal ones, by shortcut."""
    return await canned.list(caller)


@router.post("", status_code=201, response_model=CannedOut, responses=problems(401, 403, 409, 422))
async def create_canned(body: CannedCreate, caller: Caller, canned: CannedDep) -> dict[str, Any]:
    """Shared (supervisors, admins: the default for them) or personal (`personal: true`; any rep)."""
    return await canned.create(
        caller, shortcut=body.shortcut, title=body.title, text=body.text, queue_id=body.queue_id, personal=body.personal
    )


@router.patch("/{canned_id}", response_model=CannedOut, responses=problems(401, 403, 404, 409, 422))
async def update_canned(canned_id: CannedId, body: CannedUpdate, caller: Caller, canned: CannedDep) -> dict[str, Any]:
    return await canned.update(caller, canned_id, body.model_dump(exclude_none=True))


@router.delete("/{canned_id}", status_code=204, response_class=Response, responses=problems(401, 403, 404))
async def delete_canned(canned_id: CannedId, caller: Caller, canned: CannedDep) -> Response:
    await canned.delete(caller, canned_id)
    return Response(status_code=204)
