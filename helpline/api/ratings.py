"""Satisfaction ratings (docs/protocol.md "Customers' extras"): the customer rates a chat after it has ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from helpline.api import problems
from helpline.api.conversations import entry_response
from helpline.api.deps import Caller, services
from helpline.api.schemas import Entry, RatingRequest

router = APIRouter(prefix="/api/v1", tags=["conversations"])


@router.post(
    "/conversations/{conversation_id}/rating",
    status_code=201,
    response_model=Entry,
    responses=problems(401, 403, 404, 409),
)
async def rate(
    conversation_id: Annotated[str, Path(max_length=64)], body: RatingRequest, caller: Caller, request: Request
) -> Response:
    """Rate an ended chat 1-5 with an optional comment (its customer, once): a `conversation.rated` entry.

    409 while the chat is still open, or when it was rated already.
    """
    svc = services(request)
    entry = await svc.ratings.rate(caller, conversation_id, body.score, body.comment)
    request.app.state.metrics.ratings.labels(str(body.score)).inc()
    return entry_response(entry, True)
