"""Writing to the conversation log: who may see an entry, and the entries several operations share.

Every function here runs inside a caller's ``Store.write()`` transaction.
"""

from __future__ import annotations

from helpline.events import EventType
from helpline.records import Conversation, Principal, new_id, utcnow
from helpline.store import StoreSession

SYSTEM: dict[str, str] = {"id": "system", "kind": "system", "display_name": "Helpline"}


def audience(conversation: Conversation, *extra: str | None) -> set[str]:
    """Who may see an event of this conversation: its customer and current assignee (plus ``extra``)."""
    return {p for p in (conversation.customer_id, conversation.assignee_id, *extra) if p}


async def entry_audience(s: StoreSession, conversation: Conversation) -> set[str]:
    """Who may read an entry's content (see :func:`readers`), reading the assignee's permissions."""
    permissions = await s.user_permissions(conversation.assignee_id) if conversation.assignee_id else None
    return readers(conversation, permissions)


def readers(conversation: Conversation, assignee_permissions: tuple[str, ...] | None) -> set[str]:
    """The customer, and the assignee only with ``access_conversation_entries`` (a rep without it
    handles the session but never sees the text)."""
    found = {conversation.customer_id}
    if conversation.assignee_id and assignee_permissions and "access_conversation_entries" in assignee_permissions:
        found.add(conversation.assignee_id)
    return found


def actor(principal: Principal) -> dict[str, str]:
    return {"id": principal.id, "kind": principal.kind, "display_name": principal.display_name}


def rep(user_id: str, display_name: str) -> dict[str, str]:
    return {"id": user_id, "kind": "staff", "display_name": display_name}


async def automatic_message(
    s: StoreSession, conversation: Conversation, text: str, kind: str, author: dict[str, str] = SYSTEM
) -> None:
    """An entry Helpline writes itself: a greeting, a business-hours reply, an inactivity warning."""
    await s.append(
        EventType.CONVERSATION_MESSAGE,
        {"message_id": new_id(kind), "text": text, "author": author, "automatic": kind},
        conversation_id=conversation.id,
        recipients=await entry_audience(s, conversation),
    )


async def revoke_offer(
    s: StoreSession, offer_id: str, conversation_id: str, user_id: str, reason: str, *, status: str = "revoked"
) -> None:
    """Close an open offer (``status``: revoked, declined or expired) and tell the rep why."""
    await s.answer_offer(offer_id, status, utcnow())
    await s.append(
        EventType.OFFER_REVOKED,
        {"offer_id": offer_id, "rep_id": user_id, "offer_conversation_id": conversation_id, "reason": reason},
        conversation_id=None,
        recipients={user_id},
    )


async def revoke_pending_offers(s: StoreSession, conversation_id: str, reason: str) -> None:
    """Withdraw every open offer of a conversation (it was assigned, transferred or closed)."""
    for offer in await s.pending_offers(conversation_id=conversation_id):
        await revoke_offer(s, offer.id, conversation_id, offer.user_id, reason)


async def close_conversation(
    s: StoreSession,
    conversation: Conversation,
    closed_by: dict[str, str],
    reason: str,
    *,
    disposition: str | None = None,
) -> Conversation:
    await s.update_conversation(conversation.id, status="closed", closed_at=utcnow(), queue_position=None)
    await revoke_pending_offers(s, conversation.id, "closed")
    wrap_up = {"disposition": disposition} if disposition is not None else {}
    await s.append(
        EventType.CONVERSATION_CLOSED,
        {"closed_by": closed_by, "reason": reason, **wrap_up},
        conversation_id=conversation.id,
        recipients=audience(conversation),
    )
    closed = await s.conversation(conversation.id)
    assert closed is not None  # we hold the row
    return closed
