"""Offers, as the rep answers them: accept (the conversation becomes theirs) or decline.

The router makes offers and lets them expire (``routing.py``); any operation that moves or closes a
conversation withdraws its open ones (``log.revoke_pending_offers``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from helpline.domain import permissions as perms
from helpline.domain.conversations import move, participants
from helpline.domain.log import revoke_offer
from helpline.errors import Conflict, NotFound
from helpline.metrics import Metrics
from helpline.records import Offer, Principal, utcnow
from helpline.store import Store, StoreSession


class Offers:
    def __init__(self, store: Store, on_routing_change: Callable[[], None], metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics  # accepted offers (created, declined and expired ones are counted from the log)
        self.on_routing_change = on_routing_change  # the router's wake(): a rep took work or refused it

    async def accept(self, principal: Principal, offer_id: str) -> dict[str, Any]:
        """The offered rep takes the conversation: it becomes a participant and the assignee.

        Checked inside the write transaction (so against every concurrent accept, decline, timeout and
        router decision): the offer is still open and theirs, the conversation still queued, and the rep
        still under capacity. Two reps can never both win, and no rep goes over capacity.
        """
        perms.require_rep(principal)
        async with self.store.write() as s:
            offer = await own_open_offer(s, principal, offer_id)
            conversation = await s.conversation(offer.conversation_id, for_update=True)
            if conversation is None or conversation.status != "queued":
                raise Conflict("the conversation is no longer waiting")
            loads = await s.rep_loads(user_id=principal.id)
            if not loads or loads[0].active >= loads[0].capacity:
                raise Conflict("you are at capacity; close a conversation first")
            await s.answer_offer(offer.id, "accepted", utcnow())
            moved = await move(s, principal, conversation, principal.id, None, "assigned")
            result = moved.public(await participants(s, moved.id))
        if self.metrics is not None:
            self.metrics.offers.labels("accepted").inc()
        self.on_routing_change()
        return result

    async def decline(self, principal: Principal, offer_id: str) -> dict[str, Any]:
        perms.require_rep(principal)
        async with self.store.write() as s:
            offer = await own_open_offer(s, principal, offer_id)
            await revoke_offer(s, offer.id, offer.conversation_id, principal.id, "declined", status="declined")
        self.on_routing_change()
        return {"offer_id": offer_id, "status": "declined"}


async def own_open_offer(s: StoreSession, principal: Principal, offer_id: str) -> Offer:
    """The caller's offer, if it can still be answered (404 for someone else's, 409 once it is closed)."""
    offer = await s.offer(offer_id, for_update=True)
    if offer is None or offer.user_id != principal.id:
        raise NotFound("no such offer")
    if offer.status != "pending":
        raise Conflict(f"the offer is no longer open (it was {offer.status})")
    if aware(offer.expires_at) <= utcnow():
        raise Conflict("the offer has expired")
    return offer


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
