"""Internal notes: ``POST /api/v1/conversations/{id}/notes`` (staff only; never shown to the customer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from helpline.api import problems
from helpline.api.deps import Caller, NotesDep
from helpline.api.schemas import Entry, NoteRequest

router = APIRouter(prefix="/api/v1", tags=["notes"])


@router.post(
    "/conversations/{conversation_id}/notes",
    status_code=201,
    response_model=Entry,
    responses={200: {"model": Entry, "description": "the same client id again"}, **problems(401, 403, 404, 409)},
)
async def add_note(
    conversation_id: Annotated[str, Path(max_length=64)], body: NoteRequest, caller: Caller, notes: NotesDep
) -> Response:
    """A staff-only entry (`conversation.note`): the rep, supervisors and later assignees see it; the customer never."""
    entry, created = await notes.add(caller, conversation_id, body.id, body.text)
    return Response(entry.payload, status_code=201 if created else 200, media_type="application/json")
