"""Who may do what: small functions that raise, called by the services before any state changes.

The rules (docs/protocol.md "Permissions"): a customer acts only on its own conversations, and learns
nothing about others' (404, never 403); staff need ``chat_user`` for anything conversational; a rep
sees the conversations assigned to it; replying and transferring need ``access_conversation_entries``;
a supervisor sees everything and monitors read-only.
"""

from __future__ import annotations

from enum import StrEnum

from helpline.errors import Forbidden, NotFound, PermissionDenied
from helpline.events import EventType
from helpline.records import Conversation, Principal


class Permission(StrEnum):
    CHAT_USER = "chat_user"
    CHAT_REP = "chat_rep"
    ACCESS_CONVERSATION_ENTRIES = "access_conversation_entries"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ALL_PERMISSIONS = frozenset(p.value for p in Permission)


def require(principal: Principal, permission: Permission) -> None:
    if principal.is_customer:
        raise Forbidden("customers cannot do this")
    if not principal.has(permission):
        raise PermissionDenied(permission.value)


def require_staff_chat(principal: Principal) -> None:
    """Customers pass (their checks are per conversation); staff need ``chat_user``."""
    if not principal.is_customer:
        require(principal, Permission.CHAT_USER)


def require_rep(principal: Principal) -> None:
    """Being routed work (presence, offers): ``chat_rep``, on top of the ``chat_user`` all chat staff need."""
    require(principal, Permission.CHAT_USER)
    require(principal, Permission.CHAT_REP)


def is_party(principal: Principal, conversation: Conversation) -> bool:
    if principal.is_customer:
        return conversation.customer_id == principal.id
    return conversation.assignee_id == principal.id


# The events that carry what people wrote: readable only by whoever :func:`sees_text`.
TEXT_EVENTS: frozenset[str] = frozenset({EventType.CONVERSATION_MESSAGE, EventType.CONVERSATION_NOTE})


def sees_text(principal: Principal) -> bool:
    """Message and note text: customers (in their own conversations) and staff holding
    ``access_conversation_entries``, decided with the caller's permissions at *read* time on every
    path (entries, replay, live stream, poll), so that losing ACE also hides what was read before."""
    return principal.is_customer or principal.has(Permission.ACCESS_CONVERSATION_ENTRIES)


def hidden_events(principal: Principal) -> frozenset[str]:
    """The event types a stream or poll of ``principal`` skips (see :func:`sees_text`)."""
    return frozenset() if sees_text(principal) else TEXT_EVENTS


def sees_everything(principal: Principal) -> bool:
    return principal.has(Permission.SUPERVISOR)


def require_visible(principal: Principal, conversation: Conversation | None) -> Conversation:
    """The conversation, if the caller may know it exists; otherwise 404, as if it did not.

    Staff without ``chat_user`` get 403 whether or not the conversation exists, so it tells them nothing.
    """
    require_staff_chat(principal)
    if conversation is None:
        raise NotFound("no such conversation")
    if is_party(principal, conversation) or sees_everything(principal):
        return conversation
    raise NotFound("no such conversation")


def require_entries_access(principal: Principal, conversation: Conversation) -> None:
    """Reading a conversation's entries: its customer, or staff with ACE who are party or supervisor."""
    if principal.is_customer:
        return
    require(principal, Permission.ACCESS_CONVERSATION_ENTRIES)


def require_can_write(principal: Principal, conversation: Conversation) -> None:
    """Replying: the customer, or the assigned rep holding ``access_conversation_entries``."""
    if principal.is_customer:
        return
    require(principal, Permission.ACCESS_CONVERSATION_ENTRIES)
    if conversation.assignee_id != principal.id:
        raise Forbidden("only the assigned rep may reply; supervisors monitor read-only")
