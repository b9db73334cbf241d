"""Service agents (bots) and the hand-off to people (issue 14).

A queue may name a bot user (``queues.bot_user_id``) as its first stage: a new conversation in it is
given to the bot at once, with no offer and no timeout (:func:`hand_to_bot`). The bot answers through the
ordinary API (with an API key acting as its user, say) and either closes the conversation (it was
*contained*) or **escalates** it: the conversation goes back to a human queue (its own, or ``queue_id``),
the bot's summary becomes an internal note (``conversation.note``, staff only, ``escalation: true``),
``conversation.routing`` says ``escalated``, and the customer reads "Connecting you with a person".

Customers can always ask for a person: ``POST …/escalate`` from the widget, or one of the configured
phrases (``HELPLINE_HANDOFF_PHRASES``) in a message to the bot escalates at once.

The bot should not be a member of the queue it fronts: membership is what the router offers human work
by, and the bot takes its conversations here, at creation, not through offers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from helpline.config import Settings
from helpline.domain import permissions as perms
from helpline.domain.bots import can_be_a_bot, with_bot
from helpline.domain.conversations import move
from helpline.domain.log import SYSTEM, actor, automatic_message, entry_audience
from helpline.domain.permissions import Permission
from helpline.errors import Conflict, Forbidden, HelplineError, NotFound, ValidationFailed
from helpline.events import EventType
from helpline.records import Conversation, Principal, new_id, utcnow
from helpline.store import Store, StoreSession

logger = logging.getLogger("helpline.escalation")

HANDOFF_TEXT = "Connecting you with a person"
CUSTOMER_ASKED = "The customer asked for a person."


class Escalations:
    def __init__(
        self, store: Store, settings: Settings, *, on_routing_change: Callable[[], None] = lambda: None
    ) -> None:
        self.store = store
        self.on_routing_change = on_routing_change  # the router's wake(): a conversation is queued for people
        self.silence_seconds = settings.bot_silence_seconds
        self.phrases = tuple(p.strip().casefold() for p in settings.handoff_phrases.split(",") if p.strip())

    def asks_for_person(self, text: str) -> bool:
        folded = " ".join(text.casefold().split())
        return any(phrase in folded for phrase in self.phrases)

    async def escalate(
        self, principal: Principal, conversation_id: str, summary: str | None, queue_id: str | None
    ) -> dict[str, Any]:
        """Hand the conversation to people: the assigned bot or rep, or its customer, may ask."""
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id, for_update=True))
            if conversation.status == "closed":
                raise Conflict("the conversation is closed")
            if principal.is_customer:
                if not with_bot(conversation):
                    raise Conflict("the conversation is not with a bot; a person will answer")
                text = summary or CUSTOMER_ASKED
                author = {**SYSTEM, "on_behalf_of": "customer"}
            else:
                perms.require(principal, Permission.ACCESS_CONVERSATION_ENTRIES)
                if conversation.assignee_id != principal.id:
                    raise Forbidden("only the assigned bot or rep may escalate this conversation")
                if not summary:
                    raise ValidationFailed("a summary for the person who takes over is required")
                text, author = summary, actor(principal)
            escalated = await self._hand_off(s, principal, conversation, text, author, queue_id)
            result = escalated.public()
        self.on_routing_change()
        return result

    async def _hand_off(
        self,
        s: StoreSession,
        principal: Principal,
        conversation: Conversation,
        text: str,
        author: dict[str, str],
        queue_id: str | None,
    ) -> Conversation:
        target = queue_id or conversation.queue_id
        if await s.queue(id=target) is None:
            raise NotFound("no such queue")
        # The summary first: whoever is offered the conversation finds it on top of the history.
        staff = (await entry_audience(s, conversation)) - {conversation.customer_id}
        await s.append(
            EventType.CONVERSATION_NOTE,
            {"note_id": new_id("note"), "text": text, "author": author, "escalation": True},
            conversation_id=conversation.id,
            recipients=staff | ({principal.id} if not principal.is_customer else set()),
        )
        moved = await move(s, principal, conversation, None, target, "escalated")
        await s.update_conversation(moved.id, escalated_at=utcnow())
        await automatic_message(s, moved, HANDOFF_TEXT, "escalated")
        escalated = await s.conversation(moved.id)
        assert escalated is not None
        return escalated

    async def run(self) -> None:
        """Every few seconds: hand to people what a silent bot has left unanswered."""
        if self.silence_seconds <= 0:
            return
        while True:
            await asyncio.sleep(max(0.5, self.silence_seconds / 4))
            try:
                await self.sweep_silent_bots()
            except HelplineError:  # the database restarting: try again on the next round
                logger.warning("the silent-bot sweep failed", exc_info=True)

    async def sweep_silent_bots(self, now: datetime | None = None) -> int:
        """Escalate the conversations whose customer has waited ``bot_silence_seconds`` for the bot.

        A bot that is down, or stuck, must never strand a customer: the last word being the customer's
        for that long hands the conversation to people, with a note saying why.
        """
        cutoff = (now or utcnow()) - timedelta(seconds=self.silence_seconds)
        async with self.store.read() as s:
            waiting = [c for c in await s.inactive_conversations(cutoff, status="assigned") if with_bot(c)]
            unanswered = []
            for conversation in waiting:
                recent = await s.conversation_events(conversation.id, after=None, before=2**62, limit=50)
                said = [e.data() for e in recent if e.type == EventType.CONVERSATION_MESSAGE]
                if said and said[-1].get("author", {}).get("kind") == "customer":
                    unanswered.append(conversation.id)
        handed = 0
        for conversation_id in unanswered:
            async with self.store.write() as s:
                current = await s.conversation(conversation_id, for_update=True)
                if current is None or current.status != "assigned" or not with_bot(current):
                    continue
                assert current.bot_id is not None
                bot = await s.user(id=current.bot_id)
                name = bot.display_name if bot else "the bot"
                as_bot = Principal(current.bot_id, "staff", name, frozenset(bot.permissions if bot else ()))
                minutes = f"{self.silence_seconds:g} seconds"
                text = f"The bot ({name}) did not answer the customer within {minutes}."
                await self._hand_off(s, as_bot, current, text, SYSTEM, None)
                handed += 1
        if handed:
            self.on_routing_change()
        return handed

    async def after_customer_message(self, principal: Principal, conversation: Conversation, text: str) -> None:
        """A customer writing to a bot that they want a person: escalate at once."""
        if principal.is_customer and with_bot(conversation) and self.asks_for_person(text):
            try:
                await self.escalate(principal, conversation.id, CUSTOMER_ASKED, None)
            except Conflict:
                pass  # escalated or closed meanwhile: nothing left to do

    async def set_bot(self, queue_id: str, user_id: str | None) -> dict[str, Any]:
        """Name (or with None, remove) the bot that takes the queue's new conversations first."""
        async with self.store.write() as s:
            queue = await s.queue(id=queue_id)
            if queue is None:
                raise NotFound("no such queue")
            if user_id is not None:
                bot = await s.user(id=user_id)
                if bot is None:
                    raise NotFound("no such user")
                if bot.disabled or not can_be_a_bot(bot):
                    raise Conflict("a bot needs chat_user and access_conversation_entries, and must be enabled")
            await s.set_queue_bot(queue_id, user_id)
            updated = await s.queue(id=queue_id)
        assert updated is not None
        return updated.public()
