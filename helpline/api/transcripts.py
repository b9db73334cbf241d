"""Email for customers (docs/protocol.md "Customers' extras"): transcripts, and the address replies go to while away.

Both are sent from the durable outbox (domain/outbox.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from helpline.api import problems
from helpline.api.deps import Caller, services
from helpline.api.schemas import Accepted, ContactOut, ContactRequest, TranscriptRequest

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


@router.put("/me/contact", response_model=ContactOut, responses=problems(401, 403, 409))
async def set_contact(body: ContactRequest, caller: Caller, request: Request) -> dict[str, Any]:
    """Leave an email address (customers): a rep's reply while you are away is sent there, with a link back.

    409 when this server sends no email (no HELPLINE_SMTP_URL).
    """
    return await services(request).outbox.set_contact(caller, body.email)
