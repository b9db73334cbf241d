"""Internal notes: staff-only entries in a conversation (``conversation.note``).

A note is a whisper between staff: the assigned rep, supervisors monitoring, whoever takes the
conversation next. Its customer never receives it. That is decided where every entry's visibility is
decided, at write time: the customer is never among a note's recipients, so no stream, replay or poll
of the customer's carries it; the entries page leaves ``STAFF_ONLY_TYPES`` out for customers, and so
must anything else that shows a conversation to its customer (a transcript).
"""

from __future__ import annotations

from helpline.domain import permissions as perms
from helpline.domain.log import actor, entry_audience
from helpline.domain.permissions import Permission
from helpline.errors import Conflict, Forbidden, PermissionDenied
from helpline.events import EventType
from helpline.records import Principal, StoredEvent
from helpline.store import Store

NOTE = EventType.CONVERSATION_NOTE
STAFF_ONLY_TYPES: frozenset[str] = frozenset({NOTE})


def customer_may_see(event_type: str) -> bool:
    """Whether an entry of this type may ever be shown to the conversation's customer."""
    return event_type not in STAFF_ONLY_TYPES


class Notes:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(
        self, principal: Principal, conversation_id: str, note_id: str, text: str
    ) -> tuple[StoredEvent, bool]:
        """Store a note; the same client ``note_id`` again returns the stored one (200), never a duplicate."""
        if principal.is_customer:
            raise Forbidden("notes are for staff only")
        perms.require(principal, Permission.CHAT_USER)
        if not (principal.has(Permission.ACCESS_CONVERSATION_ENTRIES) or perms.sees_everything(principal)):
            raise PermissionDenied(Permission.ACCESS_CONVERSATION_ENTRIES.value)
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id, for_update=True))
            previous = await s.event_by_client_id(conversation.id, note_id)
            if previous is not None:
                data = previous.data()
                if previous.type != NOTE or data.get("author", {}).get("id") != principal.id:
                    raise Conflict("this id is already in use; generate a new one")
                return previous, False
            staff = await entry_audience(s, conversation) - {conversation.customer_id}
            stored = await s.append(
                NOTE,
                {"note_id": note_id, "text": text, "author": actor(principal)},
                conversation_id=conversation.id,
                recipients=staff | {principal.id},  # never the customer; supervisors see every event
                client_id=note_id,
            )
            return stored, True
