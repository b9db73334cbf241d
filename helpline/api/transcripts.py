"""Transcripts by email (PROTOCOL.md 1.1 "Customers"): queued in the durable outbox, sent by its worker."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from helpline.api import problems
from helpline.api.deps import Caller, services
from helpline.api.schemas import Accepted, TranscriptRequest

router = APIRouter(prefix="/api/v1", tags=["conversations"])


@router.post(
    "/conversations/{conversation_id}/transcript",
    status_code=202,
    response_model=Accepted,
    responses=problems(401, 403, 404, 409),
)
async def email_transcript(
    conversation_id: Annotated[str, Path(max_length=64)], body: TranscriptRequest, caller: Caller, request: Request
) -> dict[str, Any]:
    """Email the conversation's messages to `email` (its customer; a few times per conversation at most).

    202: stored in the outbox, sent shortly. 409 when this server sends no email (no HELPLINE_SMTP_URL).
    """
    await services(request).outbox.request_transcript(caller, conversation_id, body.email)
    return {"status": "queued"}
