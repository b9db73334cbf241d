"""Bots and the hand-off to people: escalate a conversation, and name a queue's bot (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field, StringConstraints

from helpline.api.admin import admin_principal
from helpline.api.deps import Caller
from helpline.api.schemas import ConversationOut, QueueOut, Strict
from helpline.domain.escalation import Escalations
from helpline.edge import problems, services

router = APIRouter(prefix="/api/v1", tags=["bots"])
Id = Annotated[str, Path(max_length=64)]


def escalations(request: Request) -> Escalations:
    found: Escalations = services(request).escalations
    return found


EscalationsDep = Annotated[Escalations, Depends(escalations)]


class EscalateRequest(Strict):
    queue_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    summary: Annotated[str, StringConstraints(min_length=1, max_length=4000)] | None = Field(
        None, description="for the person who takes over (an internal note); required from a bot or rep"
    )


class QueueBot(Strict):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None


@router.post(
    "/conversations/{conversation_id}/escalate",
    status_code=202,
    response_model=ConversationOut,
    responses=problems(401, 403, 404, 409),
)
async def escalate(
    conversation_id: Id, body: EscalateRequest, caller: Caller, hand_off: EscalationsDep
) -> dict[str, Any]:
    """Hand the conversation to people: back to its queue (or ``queue_id``), the summary as a staff note,
    and the customer told "Connecting you with a person". The assigned bot or rep may; so may the
    customer while a bot has it (the widget's "talk to a person")."""
    return await hand_off.escalate(caller, conversation_id, body.summary, body.queue_id)


@router.put(
    "/admin/queues/{queue_id}/bot",
    response_model=QueueOut,
    dependencies=[Depends(admin_principal)],
    responses=problems(401, 403, 404, 409),
)
async def set_queue_bot(
    queue_id: Annotated[str, Path(max_length=40)], body: QueueBot, hand_off: EscalationsDep
) -> dict[str, Any]:
    """Name the bot that takes the queue's new conversations first (``user_id: null`` removes it)."""
    return await hand_off.set_bot(queue_id, body.user_id)
