"""Removing conversations for good: retention's expired ones and an erased customer's (domain/retention.py).

Every statement here runs inside one write transaction per batch, so a batch is removed whole or not at
all, and a batch is small (``limit`` conversations) so the writer's other callers wait only briefly.
What a conversation leaves in the store, and so what goes with it:

- its events (messages, notes, receipts, routing…), their fan-out rows, and the offer events that name it
  (stored with ``conversation_id`` NULL, the conversation in ``offer_conversation_id``);
- its participants, offers, attachments (rows; the files on disk are discarded after the commit), email
  outbox rows and webhook deliveries (by conversation, or by one of its events).

Removing events moves the log's resume horizon (``log_state``) up to the newest id removed, so that a client
resuming from before it gets ``stream.reset`` instead of a silent gap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.events import EventType
from helpline.records import new_id, utcnow
from helpline.store import schema

__all__ = ["Removed", "customer_conversations", "delete_conversations", "expired_conversations"]

OFFER_EVENT_TYPES = (EventType.OFFER_CREATED, EventType.OFFER_REVOKED)


@dataclass(slots=True)
class Removed:
    conversations: int = 0
    events: int = 0
    attachment_ids: list[str] = field(default_factory=list)
    horizon: int = 0

    def add(self, other: Removed) -> None:
        self.conversations += other.conversations
        self.events += other.events
        self.attachment_ids += other.attachment_ids
        self.horizon = max(self.horizon, other.horizon)


async def expired_conversations(conn: AsyncConnection, deployment_id: str, cutoff: datetime, limit: int) -> list[str]:
    """Up to ``limit`` conversations of a deployment with no activity since ``cutoff``, oldest first."""
    c = schema.conversations
    query = (
        select(c.c.id)
        .where(c.c.deployment_id == deployment_id, c.c.updated_at < cutoff)
        .order_by(c.c.updated_at)
        .limit(limit)
    )
    return [row.id for row in await conn.execute(query)]


async def customer_conversations(conn: AsyncConnection, customer_id: str, limit: int) -> list[str]:
    c = schema.conversations
    query = select(c.c.id).where(c.c.customer_id == customer_id).order_by(c.c.created_at).limit(limit)
    return [row.id for row in await conn.execute(query)]


def _event_ids(conversation_ids: list[str]) -> Select[Any]:
    e = schema.events
    offers_named = [
        e.c.payload.contains(f'"offer_conversation_id":{json.dumps(cid, ensure_ascii=False)}', autoescape=True)
        for cid in conversation_ids
    ]
    condition: ColumnElement[bool] = e.c.conversation_id.in_(conversation_ids)
    if offers_named:
        condition = or_(
            condition, (e.c.conversation_id.is_(None) & e.c.type.in_(OFFER_EVENT_TYPES) & or_(*offers_named))
        )
    return select(e.c.id).where(condition)


async def delete_conversations(conn: AsyncConnection, conversation_ids: list[str]) -> Removed:
    """Delete these conversations and everything that belongs to them; raise the resume horizon."""
    if not conversation_ids:
        return Removed()
    o, a = schema.offers, schema.attachments
    event_ids = [row.id for row in await conn.execute(_event_ids(conversation_ids))]
    attachment_ids = [
        row.id for row in await conn.execute(select(a.c.id).where(a.c.conversation_id.in_(conversation_ids)))
    ]
    d = schema.webhook_deliveries
    by_conversation = d.c.conversation_id.in_(conversation_ids)
    for chunk in _chunks(event_ids):
        await conn.execute(delete(d).where(d.c.event_id.in_(chunk)))
        await conn.execute(delete(schema.event_recipients).where(schema.event_recipients.c.event_id.in_(chunk)))
        await conn.execute(delete(schema.events).where(schema.events.c.id.in_(chunk)))
    await conn.execute(delete(d).where(by_conversation))
    await conn.execute(delete(schema.email_outbox).where(schema.email_outbox.c.conversation_id.in_(conversation_ids)))
    await conn.execute(delete(a).where(a.c.conversation_id.in_(conversation_ids)))
    await conn.execute(delete(o).where(o.c.conversation_id.in_(conversation_ids)))
    p = schema.participants
    await conn.execute(delete(p).where(p.c.conversation_id.in_(conversation_ids)))
    c = schema.conversations
    await conn.execute(delete(c).where(c.c.id.in_(conversation_ids)))
    horizon = max(event_ids, default=0)
    if horizon:
        await raise_horizon(conn, horizon)
    return Removed(len(conversation_ids), len(event_ids), attachment_ids, horizon)


async def raise_horizon(conn: AsyncConnection, event_id: int) -> None:
    h = schema.log_state
    await conn.execute(update(h).where(h.c.id == 1, h.c.horizon < event_id).values(horizon=event_id))


async def horizon(conn: AsyncConnection) -> int:
    h = schema.log_state
    return int((await conn.execute(select(func.coalesce(func.max(h.c.horizon), 0)))).scalar_one())


async def delete_customer(conn: AsyncConnection, customer_id: str) -> None:
    """The customer's own row and what still names it (fan-out rows of events outside its conversations)."""
    r = schema.event_recipients
    await conn.execute(delete(r).where(r.c.principal_id == customer_id))
    await conn.execute(delete(schema.customers).where(schema.customers.c.id == customer_id))


async def record_erasure(
    conn: AsyncConnection, customer_id: str, deployment_id: str | None, removed: Removed, requested_by: str
) -> dict[str, Any]:
    row = {
        "id": new_id("era"),
        "customer_id": customer_id,
        "deployment_id": deployment_id,
        "conversations": removed.conversations,
        "events": removed.events,
        "attachments": len(removed.attachment_ids),
        "requested_by": requested_by[:120],
        "erased_at": utcnow(),
    }
    await conn.execute(schema.erasures.insert().values(**row))
    return row


def _chunks(values: list[int], size: int = 500) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
