"""Queries the router asks, in SQLAlchemy Core: queued work, available reps and their load, offers,
queue membership, queue statistics, stream presence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from helpline.records import Conversation, Offer, RepLoad
from helpline.store import schema
from helpline.store.connection import SessionConnection


class RoutingQueries(SessionConnection):
    async def queued_conversations(self, queue_id: str | None = None) -> list[Conversation]:
        """Waiting conversations, first come first served."""
        c = schema.conversations
        query = select(c).where(c.c.status == "queued")
        if queue_id is not None:
            query = query.where(c.c.queue_id == queue_id)
        rows = await self.conn.execute(query.order_by(c.c.queued_at, c.c.created_at, c.c.id))
        return [Conversation(**row._mapping) for row in rows]

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
        """(status, queued_at, assigned_at, closed_at) of the queue's conversations active since ``since``."""
        c = schema.conversations
        rows = await self.conn.execute(
            select(c.c.status, c.c.queued_at, c.c.assigned_at, c.c.closed_at).where(
                c.c.queue_id == queue_id,
                or_(c.c.queued_at >= since, c.c.assigned_at >= since, c.c.closed_at >= since, c.c.status != "closed"),
            )
        )
        return list(rows)

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

    async def inactive_conversations(self, silent_since: datetime) -> list[Conversation]:
        c = schema.conversations
        rows = await self.conn.execute(
            select(c).where(c.c.status != "closed", c.c.last_customer_at < silent_since).order_by(c.c.last_customer_at)
        )
        return [Conversation(**row._mapping) for row in rows]


def _offer(row: Any) -> Offer:
    return Offer(row.id, row.conversation_id, row.user_id, row.status, row.created_at, row.expires_at)
