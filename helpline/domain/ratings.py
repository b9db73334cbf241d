"""Satisfaction: after a conversation closes, its customer rates it 1-5 with an optional comment.

The rating is an entry (``conversation.rated``) that the rep and supervisors see like any other, and a
number on the conversation, which queue statistics and ``/metrics`` average over ``rating_window_days``.
"""

from __future__ import annotations

from datetime import timedelta

from helpline.config import Settings
from helpline.domain import permissions as perms
from helpline.domain.log import actor, entry_audience
from helpline.errors import Conflict, Forbidden
from helpline.events import EventType
from helpline.records import Principal, StoredEvent, utcnow
from helpline.store import Store

__all__ = ["Ratings"]


class Ratings:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def rate(self, principal: Principal, conversation_id: str, score: int, comment: str | None) -> StoredEvent:
        if not principal.is_customer:
            raise Forbidden("only the conversation's customer rates it")
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id, for_update=True))
            if conversation.status != "closed":
                raise Conflict("a chat is rated after it has ended")
            if conversation.rating is not None:
                raise Conflict("this chat was rated already")
            now = utcnow()
            await s.update_conversation(conversation.id, rating=score, rated_at=now)
            payload: dict[str, object] = {"score": score, "comment": comment or None, "by": actor(principal)}
            return await s.append(
                EventType.CONVERSATION_RATED,
                payload,
                conversation_id=conversation.id,
                # Like a message: the rep without access_conversation_entries does not read the comment.
                recipients=await entry_audience(s, conversation),
            )

    async def averages(self) -> dict[str, tuple[float, int]]:
        """queue id → (average score, ratings) over the configured window."""
        since = utcnow() - timedelta(days=self.settings.rating_window_days)
        async with self.store.read() as s:
            return await s.rating_averages(since)
