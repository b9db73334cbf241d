"""Queries the router asks, in SQLAlchemy Core: queued work, available reps and their load, offers,
queue membership, queue statistics, stream presence.

A queue is never loaded whole on a tick (issue 16): its length and positions are counted on
``ix_conversations_position``, its head read in order on ``ix_conversations_queue`` with a limit, the
customers to tell a new position picked out by the database; the idle tick's own question is one
driver statement (:meth:`RoutingQueries.router_pulse`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, or_, select, tuple_, update

from helpline.records import Conversation, Offer, QueueSummary, RepLoad, RouterPulse
from helpline.store import schema
from helpline.store.connection import SessionConnection
from helpline.store.statements import processed

# The queue's order, first come first served (the tail of ix_conversations_queue).
FIRST_COME = (schema.conversations.c.queued_at, schema.conversations.c.created_at, schema.conversations.c.id)


class RoutingQueries(SessionConnection):
    async def queued_conversations(self, queue_id: str | None = None) -> list[Conversation]:
        """Every waiting conversation, first come first served: for tests and tools, never on a tick."""
        c = schema.conversations
        query = select(c).where(c.c.status == "queued")
        if queue_id is not None:
            query = query.where(c.c.queue_id == queue_id)
        rows = await self.conn.execute(query.order_by(*FIRST_COME))
        return [Conversation(**row._mapping) for row in rows]

    async def router_pulse(self, presence_cutoff: datetime, silent_since: datetime) -> RouterPulse:
        """The idle tick's one statement (a driver statement: ``Store.hot_read`` runs it)."""
        sql, (stream_at, customer_at) = self.statements.router_pulse()
        ((head, pending, gone, inactive),) = await self._fetch(
            sql, processed(presence_cutoff, stream_at), processed(silent_since, customer_at)
        )
        return RouterPulse(int(head or 0), int(pending or 0), bool(gone), bool(inactive))

    async def queue_summaries(self, queue_id: str | None = None) -> dict[str, QueueSummary]:
        """Per queue with conversations waiting: how many, and the positions told (an index-only count)."""
        c = schema.conversations
        query = select(c.c.queue_id, func.count(), func.count(c.c.queue_position), func.max(c.c.queue_position))
        query = query.where(c.c.status == "queued")
        if queue_id is not None:
            query = query.where(c.c.queue_id == queue_id)
        rows = await self.conn.execute(query.group_by(c.c.queue_id))
        return {row[0]: QueueSummary(row[0], int(row[1]), int(row[2]), int(row[3] or 0)) for row in rows}

    async def queue_head(self, queue_id: str, limit: int, after: Conversation | None = None) -> list[Conversation]:
        """The first ``limit`` waiting conversations with no open offer (after ``after``), in order."""
        c, o = schema.conversations, schema.offers
        offered = select(o.c.id).where(o.c.conversation_id == c.c.id, o.c.status == "pending").exists()
        query = select(c).where(c.c.status == "queued", c.c.queue_id == queue_id, ~offered)
        if after is not None:
            query = query.where(tuple_(*FIRST_COME) > _first_come_key(after))
        rows = await self.conn.execute(query.order_by(*FIRST_COME).limit(limit))
        return [Conversation(**row._mapping) for row in rows]

    async def untold(self, queue_id: str) -> list[Conversation]:
        """Waiting conversations never told a position (new in the queue), in order."""
        c = schema.conversations
        query = select(c).where(c.c.status == "queued", c.c.queue_id == queue_id, c.c.queue_position.is_(None))
        # Sorted here: an ORDER BY would draw SQLite to the queue's order index, and so past every row.
        found = [Conversation(**row._mapping) for row in await self.conn.execute(query)]
        return sorted(found, key=lambda c: (_utc(c.queued_at), _utc(c.created_at), c.id))

    async def told_after(self, queue_id: str, conversation: Conversation) -> bool:
        """Whether a customer behind ``conversation`` in the queue has been told a position already."""
        c = schema.conversations
        query = select(c.c.id).where(
            c.c.status == "queued",
            c.c.queue_id == queue_id,
            tuple_(*FIRST_COME) > _first_come_key(conversation),
            c.c.queue_position.is_not(None),
        )
        return (await self.conn.execute(query.limit(1))).first() is not None

    async def misplaced(self, queue_id: str) -> list[tuple[Conversation, int]]:
        """(conversation, its position now) for each waiting conversation told none or another one: the
        database ranks the queue, only the customers whose position changed come back."""
        c = schema.conversations
        rank = func.row_number().over(order_by=FIRST_COME).label("helpline_rank")
        ranked = select(c, rank).where(c.c.status == "queued", c.c.queue_id == queue_id).subquery()
        query = (
            select(ranked)
            .where(or_(ranked.c.queue_position.is_(None), ranked.c.queue_position != ranked.c.helpline_rank))
            .order_by(ranked.c.helpline_rank)
        )
        found = []
        for row in await self.conn.execute(query):
            values = dict(row._mapping)
            position = int(values.pop("helpline_rank"))
            found.append((Conversation(**values), position))
        return found

    async def oldest_queued(self, queue_id: str) -> datetime | None:
        c = schema.conversations
        query = select(func.min(c.c.queued_at)).where(c.c.status == "queued", c.c.queue_id == queue_id)
        oldest: datetime | None = (await self.conn.execute(query)).scalar()
        return oldest

    async def queued_since(self, queue_id: str, since: datetime) -> int:
        """How many of the queue's waiting conversations were queued at or after ``since``."""
        c = schema.conversations
        query = select(func.count()).where(c.c.status == "queued", c.c.queue_id == queue_id, c.c.queued_at >= since)
        return int((await self.conn.execute(query)).scalar() or 0)

    async def rep_loads(self, *, queue_id: str | None = None, user_id: str | None = None) -> list[RepLoad]:
        """Reps with their capacity and current load (members of ``queue_id``, or one ``user_id``)."""
        u, c, o, m = schema.users, schema.conversations, schema.offers, schema.queue_members
        active = (
            select(func.count())
            .where(c.c.assignee_id == u.c.id, c.c.status == "assigned")
            .correlate(u)
            .scalar_subquery()
        )
        pending = (
            select(func.count()).where(o.c.user_id == u.c.id, o.c.status == "pending").correlate(u).scalar_subquery()
        )
        query = select(
            u.c.id,
            u.c.display_name,
            u.c.presence,
            u.c.max_concurrent,
            u.c.permissions,
            u.c.disabled,
            u.c.idle_since,
            u.c.last_stream_at,
            u.c.stream_closed_at,
            u.c.presence_since,
            active.label("active"),
            pending.label("pending"),
        )
        if queue_id is not None:
            query = query.join(m, and_(m.c.user_id == u.c.id, m.c.queue_id == queue_id))
        if user_id is not None:
            query = query.where(u.c.id == user_id)
        loads = []
        for row in await self.conn.execute(query.order_by(u.c.username)):
            if row.disabled or not {"chat_user", "chat_rep"} <= set(row.permissions):
                continue
            loads.append(
                RepLoad(
                    row.id,
                    row.display_name,
                    row.presence,
                    row.max_concurrent,
                    int(row.active),
                    int(row.pending),
                    row.idle_since,
                    "access_conversation_entries" in row.permissions,
                    row.last_stream_at,
                    row.stream_closed_at,
                    row.presence_since,
                )
            )
        return loads

    async def queue_members(self, queue_id: str) -> list[str]:
        m = schema.queue_members
        return [row.user_id for row in await self.conn.execute(select(m.c.user_id).where(m.c.queue_id == queue_id))]

    async def set_queue_membership(self, user_id: str, queue_ids: list[str]) -> None:
        m = schema.queue_members
        await self.conn.execute(delete(m).where(m.c.user_id == user_id))
        if queue_ids:
            await self.conn.execute(insert(m), [{"queue_id": q, "user_id": user_id} for q in sorted(set(queue_ids))])

    async def user_queue_ids(self, user_id: str) -> list[str]:
        m = schema.queue_members
        rows = await self.conn.execute(select(m.c.queue_id).where(m.c.user_id == user_id).order_by(m.c.queue_id))
        return [row.queue_id for row in rows]

    async def insert_offer(self, **values: Any) -> Offer:
        await self.conn.execute(insert(schema.offers).values(status="pending", answered_at=None, **values))
        return Offer(
            values["id"],
            values["conversation_id"],
            values["user_id"],
            "pending",
            values["created_at"],
            values["expires_at"],
        )

    async def offer(self, offer_id: str, *, for_update: bool = False) -> Offer | None:
        o = schema.offers
        query = select(o).where(o.c.id == offer_id)
        if for_update and not self.is_sqlite:
            query = query.with_for_update()
        row = (await self.conn.execute(query)).first()
        return None if row is None else _offer(row)

    async def pending_offers(
        self, *, conversation_id: str | None = None, expired_by: datetime | None = None
    ) -> list[Offer]:
        o = schema.offers
        query = select(o).where(o.c.status == "pending")
        if conversation_id is not None:
            query = query.where(o.c.conversation_id == conversation_id)
        if expired_by is not None:
            query = query.where(o.c.expires_at <= expired_by)
        return [_offer(row) for row in await self.conn.execute(query.order_by(o.c.created_at))]

    async def queue_hour(self, queue_id: str, since: datetime) -> list[Any]:
        """(status, queued_at, assigned_at, closed_at) of the queue's assigned conversations, and of those
        closed since ``since``. Waiting ones are counted apart (:meth:`queued_since`): a queued conversation
        has no ``assigned_at`` (``move`` clears it), so all the wallboard needs of them is a count."""
        c = schema.conversations
        columns = (c.c.status, c.c.queued_at, c.c.assigned_at, c.c.closed_at)
        assigned = select(*columns).where(c.c.status == "assigned", c.c.queue_id == queue_id)
        # By ix_conversations_closed: only a closed conversation has a closed_at.
        closed = select(*columns).where(c.c.closed_at >= since, c.c.queue_id == queue_id)
        return [*await self.conn.execute(assigned), *(r for r in await self.conn.execute(closed) if r[0] == "closed")]

    async def assigned_to(self, user_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """Each rep's open conversations with their customer's name (the wallboard's "current")."""
        if not user_ids:
            return {}
        c, k = schema.conversations, schema.customers
        rows = await self.conn.execute(
            select(c.c.assignee_id, c.c.id, k.c.display_name)
            .join(k, k.c.id == c.c.customer_id)
            .where(c.c.assignee_id.in_(user_ids), c.c.status == "assigned")
            .order_by(c.c.assigned_at)
        )
        found: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            found.setdefault(row.assignee_id, []).append({"id": row.id, "customer": row.display_name})
        return found

    async def offers_of(self, user_id: str) -> list[Offer]:
        """A rep's pending offers, oldest first (``GET /api/v1/offers``)."""
        o = schema.offers
        query = select(o).where(o.c.status == "pending", o.c.user_id == user_id).order_by(o.c.created_at)
        return [_offer(row) for row in await self.conn.execute(query)]

    async def answer_offer(self, offer_id: str, status: str, when: datetime) -> None:
        o = schema.offers
        await self.conn.execute(update(o).where(o.c.id == offer_id).values(status=status, answered_at=when))

    async def recent_refusers(self, conversation_id: str, since: datetime) -> set[str]:
        """Reps who declined or let an offer of this conversation expire lately: not offered it again yet."""
        o = schema.offers
        rows = await self.conn.execute(
            select(o.c.user_id).where(
                o.c.conversation_id == conversation_id,
                o.c.status.in_(("declined", "expired")),
                o.c.answered_at >= since,
            )
        )
        return {row.user_id for row in rows}

    async def recent_waits(self, queue_id: str, limit: int = 20) -> list[float]:
        """Seconds from queued to assigned, for the latest assignments: the basis of wait estimates."""
        c = schema.conversations
        rows = await self.conn.execute(
            select(c.c.queued_at, c.c.assigned_at)
            .where(c.c.queue_id == queue_id, c.c.assigned_at.is_not(None), c.c.queued_at.is_not(None))
            .order_by(c.c.assigned_at.desc())
            .limit(limit)
        )
        return [max(0.0, (row.assigned_at - row.queued_at).total_seconds()) for row in rows]

    async def touch_streams(self, user_ids: list[str], when: datetime) -> None:
        u = schema.users
        await self.conn.execute(update(u).where(u.c.id.in_(user_ids)).values(last_stream_at=when))

    async def reps_gone_since(self, cutoff: datetime) -> list[tuple[str, str, str]]:
        """(id, display_name, presence) of reps marked present whose streams were all gone before cutoff."""
        u = schema.users
        rows = await self.conn.execute(
            select(u.c.id, u.c.display_name, u.c.presence).where(
                u.c.presence != "offline", or_(u.c.last_stream_at.is_(None), u.c.last_stream_at < cutoff)
            )
        )
        return [(row.id, row.display_name, row.presence) for row in rows]

    async def inactive_conversations(self, silent_since: datetime, status: str | None = None) -> list[Conversation]:
        """Open conversations whose customer has been silent since ``silent_since`` (of one ``status``:
        ``assigned`` is read on an index, never the waiting queue)."""
        c = schema.conversations
        query = select(c).where(c.c.last_customer_at < silent_since)
        query = query.where(c.c.status != "closed") if status is None else query.where(c.c.status == status)
        rows = await self.conn.execute(query.order_by(c.c.last_customer_at))
        return [Conversation(**row._mapping) for row in rows]


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _first_come_key(conversation: Conversation) -> Any:
    """``conversation``'s place in the queue's order, bound as the columns' own types."""
    values = (conversation.queued_at, conversation.created_at, conversation.id)
    return tuple_(*(literal(value, column.type) for value, column in zip(values, FIRST_COME, strict=True)))


def _offer(row: Any) -> Offer:
    return Offer(row.id, row.conversation_id, row.user_id, row.status, row.created_at, row.expires_at)
