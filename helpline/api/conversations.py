"""Conversations, messages, typing, receipts, transfer, close, presence (docs/protocol.md "Conversations")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from helpline.api import problems
from helpline.api.deps import AccountsDep, Caller, ConversationsDep, OffersDep, services
from helpline.api.schemas import (
    AssignRequest,
    AvailableRep,
    CloseRequest,
    ConversationOut,
    ConversationPage,
    CreateConversationRequest,
    Entry,
    EntryPage,
    MessageRequest,
    OfferAnswer,
    OfferOut,
    PresenceOut,
    PresenceRequest,
    QueueListItem,
    QueueStats,
    ReceiptRequest,
    TransferRequest,
    TypingRequest,
)
from helpline.domain.permissions import Permission, require
from helpline.edge.responses import NOSNIFF_HEADERS
from helpline.errors import ValidationFailed
from helpline.records import StoredEvent

router = APIRouter(prefix="/api/v1", tags=["conversations"])


def entry_response(entry: StoredEvent, created: bool) -> Response:
    """A stored entry as the answer: its JSON was encoded once, when it was written (201, or 200 for a retry)."""
    return Response(
        entry.payload, status_code=201 if created else 200, headers=NOSNIFF_HEADERS, media_type="application/json"
    )


ConversationId = Annotated[str, Path(max_length=64)]
EventId = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


@router.post(
    "/conversations",
    status_code=201,
    response_model=ConversationOut,
    responses={
        200: {"model": ConversationOut, "description": "the same client id again"},
        **problems(401, 403, 404),
    },
)
async def create_conversation(
    body: CreateConversationRequest, caller: Caller, service: ConversationsDep, response: Response
) -> dict[str, Any]:
    """Open a conversation (customers). Sending the same client `id` again returns the same conversation.

    The client `id` is a retry key of the caller's own: the conversation's id is always the server's.
    """
    conversation, created = await service.create(caller, body.id, body.pre_chat or {})
    response.status_code = 201 if created else 200
    return await service.get(caller, conversation.id)


@router.get("/conversations", response_model=ConversationPage, responses=problems(401, 403))
async def list_conversations(
    caller: Caller,
    service: ConversationsDep,
    status: Literal["queued", "assigned", "closed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> dict[str, Any]:
    """The caller's conversations, newest first: a customer's own, a rep's assigned, a supervisor's all."""
    return await service.page(caller, status=status, limit=limit, cursor=cursor)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut, responses=problems(401, 403, 404))
async def get_conversation(
    conversation_id: ConversationId, caller: Caller, service: ConversationsDep
) -> dict[str, Any]:
    return await service.get(caller, conversation_id)


@router.get("/conversations/{conversation_id}/entries", response_model=EntryPage, responses=problems(401, 403, 404))
async def list_entries(
    conversation_id: ConversationId,
    caller: Caller,
    service: ConversationsDep,
    after: EventId = None,
    before: EventId = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """The conversation's stored entries in id order; page with `after` (forward) or `before` (backward)."""
    if after is not None and before is not None:
        raise ValidationFailed("give either 'after' or 'before', not both")
    return await service.entries(caller, conversation_id, after=after, before=before, limit=limit)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=Entry,
    responses={
        200: {"model": Entry, "description": "the same client id again"},
        **problems(401, 403, 404, 409),
    },
)
async def post_message(
    conversation_id: ConversationId, body: MessageRequest, caller: Caller, service: ConversationsDep, request: Request
) -> Response:
    """Send a message. A 2xx means it is durably stored; a retry with the same `id` never duplicates it."""
    entry, created = await service.post_message(caller, conversation_id, body.id, body.text, body.attachment_ids)
    if created:
        request.app.state.metrics.messages_stored.inc()
    return entry_response(entry, created)


@router.post(
    "/conversations/{conversation_id}/typing",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 409),
)
async def typing(
    conversation_id: ConversationId, body: TypingRequest, caller: Caller, service: ConversationsDep
) -> Response:
    """Ephemeral typing indicator: delivered live, never stored or replayed."""
    await service.typing(caller, conversation_id, body.state)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/receipts",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
)
async def receipt(
    conversation_id: ConversationId, body: ReceiptRequest, caller: Caller, service: ConversationsDep
) -> Response:
    await service.receipt(caller, conversation_id, body.type, body.entry_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/transfer",
    status_code=202,
    response_model=ConversationOut,
    responses=problems(401, 403, 404, 409),
)
async def transfer(
    conversation_id: ConversationId, body: TransferRequest, caller: Caller, service: ConversationsDep
) -> dict[str, Any]:
    """Transfer to a rep (`to_user_id`) or a queue (`to_queue_id`); needs access_conversation_entries."""
    if (body.to_user_id is None) == (body.to_queue_id is None):
        raise ValidationFailed("give exactly one of 'to_user_id' or 'to_queue_id'")
    return await service.transfer(caller, conversation_id, to_user_id=body.to_user_id, to_queue_id=body.to_queue_id)


@router.post(
    "/conversations/{conversation_id}/assign",
    response_model=ConversationOut,
    responses=problems(401, 403, 404, 409),
)
async def assign(
    conversation_id: ConversationId, body: AssignRequest, caller: Caller, service: ConversationsDep
) -> dict[str, Any]:
    """Assign to a rep by hand (supervisors, admins)."""
    return await service.assign(caller, conversation_id, body.user_id)


@router.post(
    "/conversations/{conversation_id}/close",
    response_model=ConversationOut,
    responses=problems(401, 403, 404, 422),
)
async def close(
    conversation_id: ConversationId,
    caller: Caller,
    service: ConversationsDep,
    request: Request,
    body: CloseRequest | None = None,
) -> dict[str, Any]:
    """Close; staff may give a wrap-up `disposition` from the queue's list (stored on the close entry).

    The body is optional; an empty one that claims to be JSON is refused as on every route whose body is
    required (422: there is no JSON value to validate), rather than read as "no body".
    """
    content_type = request.headers.get("content-type", "")
    if body is None and content_type.startswith("application/json") and not await request.body():
        raise ValidationFailed("an empty JSON body: send {} or no Content-Type")
    return await service.close(caller, conversation_id, body.disposition if body else None)


@router.put("/me/presence", response_model=PresenceOut, responses=problems(401, 403))
async def set_presence(body: PresenceRequest, caller: Caller, accounts: AccountsDep) -> dict[str, Any]:
    return await accounts.set_presence(caller, body.status)


@router.get("/me/presence", response_model=PresenceOut, responses=problems(401, 403))
async def get_presence(caller: Caller, accounts: AccountsDep) -> dict[str, Any]:
    """The caller's presence as the server has it (what the console's switch shows after a reload)."""
    return await accounts.presence(caller)


OfferId = Annotated[str, Path(max_length=64)]


@router.get("/offers", response_model=list[OfferOut], responses=problems(401, 403))
async def list_offers(caller: Caller, service: ConversationsDep) -> list[dict[str, Any]]:
    """The caller's pending offers with `expires_at`, customer and first message (after a reload)."""
    return await service.pending_offers(caller)


@router.post("/offers/{offer_id}/accept", response_model=ConversationOut, responses=problems(401, 403, 404, 409))
async def accept_offer(offer_id: OfferId, caller: Caller, offers: OffersDep) -> dict[str, Any]:
    """Take an offered conversation: you become its assignee. 409 if it was revoked, expired or taken."""
    return await offers.accept(caller, offer_id)


@router.post("/offers/{offer_id}/decline", response_model=OfferAnswer, responses=problems(401, 403, 404, 409))
async def decline_offer(offer_id: OfferId, caller: Caller, offers: OffersDep) -> dict[str, Any]:
    """Decline an offer; the router offers the conversation to another rep."""
    return await offers.decline(caller, offer_id)


@router.get("/reps/available", response_model=list[AvailableRep], responses=problems(401, 403))
async def available_reps(
    caller: Caller,
    service: ConversationsDep,
    queue_id: Annotated[str | None, Query(max_length=40)] = None,
) -> list[dict[str, Any]]:
    """Who a conversation can be transferred to: online reps with free capacity (access_conversation_entries)."""
    return await service.available_reps(caller, queue_id)


@router.get("/queues/stats", response_model=list[QueueStats], responses=problems(401, 403))
async def queue_stats(caller: Caller, request: Request) -> list[dict[str, Any]]:
    """Every queue's length, longest wait, and its reps' presence and load (supervisors)."""
    require(caller, Permission.SUPERVISOR)
    stats: list[dict[str, Any]] = await services(request).router.queue_stats()
    return stats


@router.get("/queues", response_model=list[QueueListItem], responses=problems(401, 403))
async def list_queues(caller: Caller, service: ConversationsDep) -> list[dict[str, Any]]:
    """Queues by name with their waiting counts and wrap-up dispositions (for pickers)."""
    return await service.queue_list(caller)
