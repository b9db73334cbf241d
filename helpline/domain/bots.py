"""Bots as a queue's first stage: a new conversation goes to the queue's bot at once (issue 14).

Run inside the creating transaction by ``Conversations.create``; the hand-off back to people is
domain/escalation.py.
"""

from __future__ import annotations

from helpline.domain.log import rep
from helpline.domain.permissions import Permission
from helpline.events import EventType
from helpline.records import Conversation, User, utcnow
from helpline.store import StoreSession


def with_bot(conversation: Conversation) -> bool:
    """Whether the conversation is still in its bot's hands (not escalated, not handed on)."""
    return conversation.bot_id is not None and conversation.assignee_id == conversation.bot_id


def can_be_a_bot(user: User) -> bool:
    """A bot reads and writes entries (``chat_user`` and ``access_conversation_entries``)."""
    return {Permission.CHAT_USER.value, Permission.ACCESS_CONVERSATION_ENTRIES.value} <= set(user.permissions)


async def hand_to_bot(s: StoreSession, conversation: Conversation, bot: User) -> Conversation:
    """Give a new conversation to its queue's bot, in the creating transaction: assigned at once."""
    now = utcnow()
    await s.update_conversation(
        conversation.id, assignee_id=bot.id, status="assigned", assigned_at=now, queue_position=None, bot_id=bot.id
    )
    await s.add_participant(conversation.id, bot.id, "bot")
    handed = await s.conversation(conversation.id)
    assert handed is not None  # we hold the row
    who = {**rep(bot.id, bot.display_name), "bot": "true"}
    await s.append(
        EventType.CONVERSATION_PARTICIPANT_CHANGED,
        {"action": "joined", "participant": who},
        conversation_id=conversation.id,
        recipients={handed.customer_id, bot.id},
    )
    await s.append(
        EventType.CONVERSATION_ROUTING,
        {"state": "assigned", "queue_id": handed.queue_id, "assignee": who, "bot": True},
        conversation_id=conversation.id,
        recipients={handed.customer_id, bot.id},
    )
    return handed


async def bot_for_queue(s: StoreSession, queue_id: str) -> User | None:
    """The queue's bot, if it names one that can take a conversation now."""
    queue = await s.queue(id=queue_id)
    if queue is None or queue.bot_user_id is None:
        return None
    bot = await s.user(id=queue.bot_user_id)
    if bot is None or bot.disabled or not can_be_a_bot(bot):
        return None
    return bot
