"""The conversation lifecycle: open, read, message, type, receipt, transfer, assign, close.

Each operation checks permissions, changes state and appends its events in one transaction, so a 2xx
always means "stored, and on its way to every entitled stream". Offers are answered in ``offers.py``;
list cursors are encoded in ``cursor.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from helpline import events
from helpline.bus import Bus, Envelope, channels_for
from helpline.domain import hours, prechat
from helpline.domain import permissions as perms
from helpline.domain.attachments import attach
from helpline.domain.bots import bot_for_queue, hand_to_bot
from helpline.domain.cursor import decode_cursor, encode_cursor
from helpline.domain.log import (
    SYSTEM,
    actor,
    audience,
    automatic_message,
    close_conversation,
    readers,
    rep,
    revoke_pending_offers,
)
from helpline.domain.notes import STAFF_ONLY_TYPES
from helpline.domain.outbox import Outbox
from helpline.domain.permissions import Permission
from helpline.domain.routing import offer_preview
from helpline.errors import Conflict, Forbidden, NotFound, PermissionDenied, ValidationFailed
from helpline.events import EventType
from helpline.metrics import Metrics
from helpline.records import Conversation, Principal, StoredEvent, User, isoformat, new_id, utcnow
from helpline.store import Store, StoreSession

CustomerMessageHook = Callable[[Principal, Conversation, str], Awaitable[None]]
TYPING = {"started": EventType.CONVERSATION_TYPING_STARTED, "stopped": EventType.CONVERSATION_TYPING_STOPPED}
RECEIPTS = {"delivered": EventType.CONVERSATION_DELIVERED, "read": EventType.CONVERSATION_READ}


class Conversations:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        on_routing_change: Callable[[], None] = lambda: None,
        outbox: Outbox | None = None,
        after_customer_message: CustomerMessageHook | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics  # handle times of the conversations closed here
        self.bus = bus
        self.on_routing_change = on_routing_change  # the router's wake(): work or capacity appeared
        self.outbox = outbox  # emails a rep's reply to a customer who is away (domain/outbox.py)
        # domain/escalation.py: a customer asking a bot for a person (called after the message is stored).
        self.after_customer_message = after_customer_message

    async def create(
        self, principal: Principal, client_id: str | None, pre_chat: dict[str, Any]
    ) -> tuple[Conversation, bool]:
        """Open a conversation for a customer; the same client id again returns the same one.

        The client's id is only a retry key, scoped to the customer (issue 13): the conversation's own id
        is always generated here, so another customer's key can neither collide with nor reveal it.
        """
        if not principal.is_customer or principal.deployment_id is None:
            raise Forbidden("only customers open conversations")
        async with self.store.write() as s:
            if client_id is not None:
                existing = await s.conversation_by_client_id(principal.id, client_id)
                if existing is not None:
                    return existing, False
            deployment = await s.deployment(id=principal.deployment_id)
            if deployment is None:
                raise NotFound("the deployment no longer exists")
            # The answers are checked against the deployment's form, and may choose the queue.
            fields = list(deployment.pre_chat_fields)
            customer = await s.customer(id=principal.id)
            known = prechat.known_answers(
                fields,
                verified=bool(customer and customer.verified),
                email=customer.email if customer else None,
                name=customer.display_name if customer else None,
            )
            answers = prechat.checked(fields, pre_chat, known)
            queue_id = deployment.queue_id
            routed = prechat.routed_queue(fields, answers)
            if routed is not None:
                queue = await s.queue(name=routed)
                if queue is not None:  # a queue removed since the form was saved: the deployment's own
                    queue_id = queue.id
            now = utcnow()
            conversation = await s.insert_conversation(
                id=new_id("conv"),
                client_id=client_id,
                customer_id=principal.id,
                deployment_id=deployment.id,
                queue_id=queue_id,
                status="queued",
                pre_chat=answers,
                queued_at=now,
                last_customer_at=now,
            )
            await s.add_participant(conversation.id, principal.id, "customer")
            await s.append(
                EventType.CONVERSATION_CREATED,
                {"conversation": conversation.public()},
                conversation_id=conversation.id,
                recipients=audience(conversation),
            )
            bot = await bot_for_queue(s, conversation.queue_id)
            if bot is not None:  # the queue's first stage is a bot: it has the conversation at once
                return await hand_to_bot(s, conversation, bot), True
            business_hours = deployment.business_hours
            if not hours.is_open(business_hours, now):
                assert business_hours is not None
                reply = business_hours.get("auto_reply") or hours.DEFAULT_AUTO_REPLY
                await automatic_message(s, conversation, reply, "outside-hours")
                if business_hours.get("outside") == "refuse":
                    await s.append(
                        EventType.CONVERSATION_ROUTING,
                        {
                            "state": "failed",
                            "reason": "outside_business_hours",
                            "queue_id": conversation.queue_id,
                            "assignee": None,
                        },
                        conversation_id=conversation.id,
                        recipients=audience(conversation),
                    )
                    return await close_conversation(s, conversation, SYSTEM, "outside_business_hours"), True
            # How many reps are online: with none, the widget offers to continue by email (issue 12).
            present = sum(1 for r in await s.rep_loads(queue_id=conversation.queue_id) if r.presence == "online")
            await s.append(
                EventType.CONVERSATION_ROUTING,
                {"state": "queued", "queue_id": conversation.queue_id, "assignee": None, "reps_online": present},
                conversation_id=conversation.id,
                recipients=audience(conversation),
            )
        self.on_routing_change()
        return conversation, True

    async def get(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        async with self.store.read() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id))
            found = conversation.public(await participants(s, conversation.id))
            if principal.is_customer:
                return found
            (named,) = await _with_names(s, [found])
            if named["customer"] and named["customer"]["verified"]:
                # A verified customer keeps one history: the rep sees what came before.
                earlier = await s.list_conversations(customer_id=conversation.customer_id, limit=11)
                named["earlier_conversations"] = [
                    {"id": c.id, "status": c.status, "created_at": isoformat(c.created_at), "pre_chat": c.pre_chat}
                    for c in earlier
                    if c.id != conversation.id
                ][:10]
            return named

    async def page(self, principal: Principal, *, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        perms.require_staff_chat(principal)
        after = decode_cursor(cursor) if cursor else None
        filters: dict[str, Any] = {}
        if principal.is_customer:
            filters["customer_id"] = principal.id
        elif not perms.sees_everything(principal):
            filters["assignee_id"] = principal.id
        async with self.store.read() as s:
            rows = await s.list_conversations(status=status, after=after, limit=limit + 1, **filters)
            page = rows[:limit]
            listed = [c.public() for c in page]
            if not principal.is_customer:
                listed = await _with_names(s, listed)
        next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
        return {"conversations": listed, "next_cursor": next_cursor}

    async def entries(
        self, principal: Principal, conversation_id: str, *, after: int | None, before: int | None, limit: int
    ) -> dict[str, Any]:
        async with self.store.read() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id))
            perms.require_entries_access(principal, conversation)
            rows = await s.conversation_events(
                conversation.id,
                after=after,
                before=before,
                limit=limit + 1,
                exclude_types=STAFF_ONLY_TYPES if principal.is_customer else None,
            )
        more = len(rows) > limit
        if before is not None:
            page = rows[-limit:]
            next_cursor = page[0].id if more and page else None
        else:
            page = rows[:limit]
            next_cursor = page[-1].id if more and page else None
        return {"entries": [e.data() for e in page], "next_cursor": next_cursor}

    async def post_message(
        self,
        principal: Principal,
        conversation_id: str,
        message_id: str,
        text: str,
        attachment_ids: list[str] | None = None,
    ) -> tuple[StoredEvent, bool]:
        """Store a message; a retry with the same ``message_id`` returns the stored entry instead.

        The entry comes back as stored, its JSON already encoded: the answer is those bytes.
        """
        async with self.store.write() as s:
            found, previous, assignee_permissions = await s.message_context(
                conversation_id, message_id, for_update=True
            )
            conversation = perms.require_visible(principal, found)
            perms.require_can_write(principal, conversation)
            if previous is not None:
                if previous.data().get("author", {}).get("id") != principal.id:
                    # Someone else's message: a 200 would tell this sender its own text was stored.
                    raise Conflict("this message id is already in use; generate a new one")
                return previous, False
            if conversation.status == "closed":
                raise Conflict("the conversation is closed")
            # A customer's message restarts the inactivity clock; any message touches updated_at.
            if principal.is_customer:
                changes: dict[str, Any] = {"last_customer_at": utcnow(), "inactivity_warned_at": None}
            else:
                changes = {"last_staff_at": utcnow()}  # the customer is answered: no longer waiting
            payload: dict[str, Any] = {"message_id": message_id, "text": text, "author": actor(principal)}
            files = await attach(s, principal, conversation, attachment_ids) if attachment_ids else []
            if files:
                payload["attachments"] = [f.public() for f in files]
            stored = await s.append(
                EventType.CONVERSATION_MESSAGE,
                payload,
                conversation_id=conversation.id,
                recipients=readers(conversation, assignee_permissions),
                client_id=message_id,
                conversation_changes=changes,
            )
            if files:
                await s.mark_attached([f.id for f in files], stored.id or 0)
            emailed = False
            if not principal.is_customer and self.outbox is not None:
                emailed = await self.outbox.offline_reply(s, conversation, principal, stored)
        if emailed and self.outbox is not None:
            self.outbox.wake()  # committed: the outbox worker can send it now
        if conversation.bot_id is not None and self.after_customer_message is not None and principal.is_customer:
            await self.after_customer_message(principal, conversation, text)
        return stored, True

    async def typing(self, principal: Principal, conversation_id: str, state: str) -> None:
        """Ephemeral: published to the bus only, never stored, never replayed."""
        async with self.store.read() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id))
        if not perms.is_party(principal, conversation):
            raise Forbidden("only the conversation's customer and rep send typing indicators")
        if conversation.status == "closed":
            raise Conflict("the conversation is closed")
        event_type = TYPING[state]
        body = events.encode(event_type, conversation.id, {"by": actor(principal)})
        await self.bus.publish(channels_for(audience(conversation)), Envelope(None, event_type, body))

    async def receipt(self, principal: Principal, conversation_id: str, kind: str, entry_id: int) -> None:
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id))
            if not perms.is_party(principal, conversation):
                raise Forbidden("only the conversation's parties send receipts")
            if not await s.event_in_conversation(conversation.id, entry_id):
                raise NotFound("no such entry in this conversation")
            await s.append(
                RECEIPTS[kind],
                {"entry_id": entry_id, "by": actor(principal)},
                conversation_id=conversation.id,
                recipients=audience(conversation),
            )

    async def close(self, principal: Principal, conversation_id: str, disposition: str | None = None) -> dict[str, Any]:
        """Close; staff may give a wrap-up ``disposition`` from the queue's list, stored on the close entry."""
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id, for_update=True))
            if disposition is not None:
                if principal.is_customer:
                    raise Forbidden("customers close without a disposition")
                queue = await s.queue(id=conversation.queue_id)
                if queue is None or disposition not in queue.dispositions:
                    choices = ", ".join(queue.dispositions) if queue and queue.dispositions else "none configured"
                    raise ValidationFailed(f"unknown disposition for this queue (choices: {choices})")
            closing = conversation.status != "closed"
            if closing:
                conversation = await close_conversation(
                    s, conversation, actor(principal), "closed", disposition=disposition
                )
            result = conversation.public(await participants(s, conversation.id))
        if closing and self.metrics is not None:
            self.metrics.handled(conversation.assigned_at, conversation.closed_at)
        self.on_routing_change()  # the rep has room for another conversation
        return result

    async def transfer(
        self, principal: Principal, conversation_id: str, *, to_user_id: str | None, to_queue_id: str | None
    ) -> dict[str, Any]:
        """Hand the conversation to another rep or back to a queue; the history goes with it.

        Only an online rep with free capacity can take a transfer (``available_reps`` lists them).
        """
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id, for_update=True))
            perms.require(principal, Permission.ACCESS_CONVERSATION_ENTRIES)
            if conversation.assignee_id != principal.id and not perms.sees_everything(principal):
                raise Forbidden("only the assigned rep or a supervisor may transfer this conversation")
            if to_user_id is not None:
                await _require_routable(s, to_user_id)
                loads = await s.rep_loads(user_id=to_user_id)
                if loads and (loads[0].presence != "online" or loads[0].active >= loads[0].capacity):
                    name = loads[0].display_name
                    raise Conflict(f"{name} is not online with free capacity; pick another rep or a queue")
            moved = await move(s, principal, conversation, to_user_id, to_queue_id, "transferred")
            result = moved.public(await participants(s, moved.id))
        self.on_routing_change()
        return result

    async def assign(self, principal: Principal, conversation_id: str, user_id: str) -> dict[str, Any]:
        """Supervisors and admins assign by hand, overriding routing (presence and capacity included)."""
        if not (principal.has(Permission.SUPERVISOR) or principal.has(Permission.ADMIN)):
            raise PermissionDenied(Permission.SUPERVISOR.value)
        async with self.store.write() as s:
            conversation = await s.conversation(conversation_id, for_update=True)
            if conversation is None:
                raise NotFound("no such conversation")
            await _require_routable(s, user_id)
            moved = await move(s, principal, conversation, user_id, None, "assigned")
            result = moved.public(await participants(s, moved.id))
        self.on_routing_change()
        return result

    async def available_reps(self, principal: Principal, queue_id: str | None) -> list[dict[str, Any]]:
        """Transfer targets: online reps who can answer (ACE), with free capacity (in ``queue_id`` when given)."""
        perms.require(principal, Permission.CHAT_USER)
        perms.require(principal, Permission.ACCESS_CONVERSATION_ENTRIES)
        async with self.store.read() as s:
            loads = await s.rep_loads(queue_id=queue_id)
        return [
            {
                "id": r.id,
                "display_name": r.display_name,
                "load": r.active,
                "active": r.active,
                "capacity": r.capacity,
            }
            for r in loads
            if r.routable and r.presence == "online" and r.active < r.capacity and r.id != principal.id
        ]

    async def pending_offers(self, principal: Principal) -> list[dict[str, Any]]:
        """The caller's open offers, as ``offer.created`` carried them, so a reloaded console shows them."""
        perms.require_rep(principal)
        now = utcnow()
        async with self.store.read() as s:
            found = []
            for offer in await s.offers_of(principal.id):
                if _aware(offer.expires_at) <= now:
                    continue  # the router revokes it on its next tick
                conversation = await s.conversation(offer.conversation_id)
                if conversation is None:
                    continue
                found.append(
                    {
                        "offer_id": offer.id,
                        "rep_id": offer.user_id,
                        "offer_conversation_id": conversation.id,
                        "created_at": isoformat(offer.created_at),
                        "expires_at": isoformat(offer.expires_at),
                        "conversation": conversation.public(),
                        **await offer_preview(s, conversation),
                    }
                )
        return found

    async def queue_list(self, principal: Principal) -> list[dict[str, Any]]:
        """Queues by name for pickers, with how many wait in each and their wrap-up dispositions."""
        perms.require(principal, Permission.CHAT_USER)
        async with self.store.read() as s:
            waiting = {q: summary.waiting for q, summary in (await s.queue_summaries()).items()}  # counted
            return [
                {"id": q.id, "name": q.name, "waiting": waiting.get(q.id, 0), "dispositions": list(q.dispositions)}
                for q in await s.queues()
            ]


async def move(
    s: StoreSession,
    principal: Principal,
    conversation: Conversation,
    to_user_id: str | None,
    to_queue_id: str | None,
    state: str,
) -> Conversation:
    """Assign ``conversation`` to a rep, or put it back in a queue (``to_queue_id``): offers withdrawn,
    participants and the routing state updated, and the greeting written if the deployment has one."""
    if conversation.status == "closed":
        raise Conflict("the conversation is closed")
    previous = conversation.assignee_id
    target: User | None = None
    now = utcnow()
    if to_user_id is not None:
        target = await s.user(id=to_user_id)
        if target is None:
            raise NotFound("no such user")
        if target.id == previous:
            raise Conflict("the conversation is already assigned to this rep")
        values: dict[str, Any] = {
            "assignee_id": target.id,
            "status": "assigned",
            "assigned_at": now,
            "queue_position": None,
        }
    else:
        queue = await s.queue(id=to_queue_id)
        if queue is None:
            raise NotFound("no such queue")
        values = {
            "assignee_id": None,
            "status": "queued",
            "queue_id": queue.id,
            "queued_at": now,
            "assigned_at": None,
            "queue_position": None,
        }
    await revoke_pending_offers(s, conversation.id, "withdrawn")
    await s.update_conversation(conversation.id, **values)
    moved = await s.conversation(conversation.id)
    assert moved is not None  # we hold the row
    if previous is not None:
        await s.remove_participant(conversation.id, previous)
        old = await s.user(id=previous)
        await s.append(
            EventType.CONVERSATION_PARTICIPANT_CHANGED,
            {"action": "left", "participant": rep(previous, old.display_name if old else "")},
            conversation_id=conversation.id,
            recipients=audience(moved, previous),
        )
    if target is not None:
        await s.add_participant(conversation.id, target.id, "rep")
        await s.update_user(target.id, idle_since=now)
        await s.append(
            EventType.CONVERSATION_PARTICIPANT_CHANGED,
            {"action": "joined", "participant": rep(target.id, target.display_name)},
            conversation_id=conversation.id,
            recipients=audience(moved),
        )
    await s.append(
        EventType.CONVERSATION_ROUTING,
        {
            "state": state,
            "queue_id": moved.queue_id,
            "assignee": rep(target.id, target.display_name) if target else None,
        },
        conversation_id=conversation.id,
        recipients=audience(moved),
    )
    if target is not None:
        deployment = await s.deployment(id=moved.deployment_id)
        if deployment is not None and deployment.greeting:  # configured per deployment; none by default
            greeting = deployment.greeting.replace("{rep}", target.display_name)
            await automatic_message(s, moved, greeting, "greeting", rep(target.id, target.display_name))
    return moved


async def _with_names(s: StoreSession, conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Staff see people by name, never by id: the customer (with email, verified) and the assignee."""
    customers = await s.customers_by_id({c["customer_id"] for c in conversations})
    users = await s.user_names({c["assignee_id"] for c in conversations if c["assignee_id"]})
    named = []
    for c in conversations:
        customer = customers.get(c["customer_id"])
        assignee = c["assignee_id"]
        named.append(
            {
                **c,
                "customer": {
                    "id": customer.id,
                    "display_name": customer.display_name,
                    "email": customer.email,
                    "verified": customer.verified,
                }
                if customer
                else None,
                "assignee": {"id": assignee, "display_name": users.get(assignee, "")} if assignee else None,
            }
        )
    return named


ROUTABLE = (Permission.CHAT_USER, Permission.CHAT_REP, Permission.ACCESS_CONVERSATION_ENTRIES)


async def _require_routable(s: StoreSession, user_id: str) -> None:
    """Work goes only to reps who can answer it: 409 naming what the target lacks (issue 11)."""
    target = await s.user(id=user_id)
    if target is None:
        raise NotFound("no such user")
    if target.disabled:
        raise Conflict(f"{target.display_name}'s account is disabled")
    for permission in ROUTABLE:
        if permission.value not in target.permissions:
            raise Conflict(
                f"{target.display_name} cannot take conversations: an admin must grant the "
                f"'{permission.value}' permission",
                permission=permission.value,
            )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


async def participants(s: StoreSession, conversation_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": row.participant_id,
            "kind": row.kind,
            "joined_at": isoformat(row.joined_at),
            "left_at": isoformat(row.left_at) if row.left_at else None,
        }
        for row in await s.participants(conversation_id)
    ]
