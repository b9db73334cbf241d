"""The directory, in SQLAlchemy Core: users, queues, deployments, customers, conversations and their
participants, stream tickets. What is read by key on every request is in ``log.py``, on the driver."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update

from helpline.records import Conversation, Customer, Deployment, Queue, User, new_id, utcnow
from helpline.store import schema
from helpline.store.connection import SessionConnection
from helpline.store.log import user_record


class Directory(SessionConnection):
    # -- users ----------------------------------------------------------------------------------
    async def insert_user(self, **values: Any) -> User:
        values = {"id": new_id("usr"), "created_at": utcnow(), "presence": "offline", **values}
        await self.conn.execute(insert(schema.users).values(**values))
        return user_record(values)

    async def user_by_username(self, username: str | None) -> User | None:
        u = schema.users
        found = (await self.conn.execute(select(u).where(u.c.username == username))).first()
        return None if found is None else user_record(found._mapping)

    async def users(self) -> list[User]:
        rows = await self.conn.execute(select(schema.users).order_by(schema.users.c.username))
        return [user_record(row._mapping) for row in rows]

    async def update_user(self, user_id: str, **values: Any) -> None:
        await self.conn.execute(update(schema.users).where(schema.users.c.id == user_id).values(**values))

    async def use_stream_ticket(self, jti: str, expires_at: datetime) -> bool:
        """Record a ticket as spent; False when it was spent before (tickets are single use)."""
        t = schema.used_stream_tickets
        await self.conn.execute(delete(t).where(t.c.expires_at < utcnow()))
        if (await self.conn.execute(select(t.c.jti).where(t.c.jti == jti))).first() is not None:
            return False
        await self.conn.execute(insert(t).values(jti=jti, expires_at=expires_at))
        return True

    # -- queues, deployments, customers ---------------------------------------------------------
    async def insert_queue(self, name: str) -> Queue:
        queue = Queue(new_id("que"), name, utcnow())
        await self.conn.execute(insert(schema.queues).values(id=queue.id, name=name, created_at=queue.created_at))
        return queue

    async def queue(self, *, id: str | None = None, name: str | None = None) -> Queue | None:
        q = schema.queues
        condition = q.c.id == id if id is not None else q.c.name == name
        row = (await self.conn.execute(select(q).where(condition))).first()
        return None if row is None else _queue(row)

    async def set_queue_bot(self, queue_id: str, user_id: str | None) -> None:
        q = schema.queues
        await self.conn.execute(update(q).where(q.c.id == queue_id).values(bot_user_id=user_id))

    async def queues(self) -> list[Queue]:
        rows = await self.conn.execute(select(schema.queues).order_by(schema.queues.c.name))
        return [_queue(row) for row in rows]

    async def update_queue(self, queue_id: str, **values: Any) -> None:
        await self.conn.execute(update(schema.queues).where(schema.queues.c.id == queue_id).values(**values))

    async def user_names(self, user_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        u = schema.users
        rows = await self.conn.execute(select(u.c.id, u.c.display_name).where(u.c.id.in_(ids)))
        return {row.id: row.display_name for row in rows}

    async def customers_by_id(self, customer_ids: Iterable[str]) -> dict[str, Customer]:
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        c = schema.customers
        rows = await self.conn.execute(select(c).where(c.c.id.in_(ids)))
        return {row.id: Customer(**row._mapping) for row in rows}

    async def insert_deployment(self, **values: Any) -> Deployment:
        values = {"id": new_id("dep"), "created_at": utcnow(), **values}
        await self.conn.execute(insert(schema.deployments).values(**values))
        return _deployment(values)

    async def deployment(self, *, id: str | None = None, key: str | None = None) -> Deployment | None:
        d = schema.deployments
        condition = d.c.id == id if id is not None else d.c.key == key
        row = (await self.conn.execute(select(d).where(condition))).first()
        return None if row is None else _deployment(row._mapping)

    async def instance_mark(self, name: str) -> str | None:
        m = schema.instance_marks
        row = (await self.conn.execute(select(m.c.value).where(m.c.name == name))).first()
        return None if row is None else str(row[0])

    async def set_instance_mark(self, name: str, value: str) -> None:
        await self.conn.execute(insert(schema.instance_marks).values(name=name, value=value, created_at=utcnow()))

    async def is_empty(self) -> bool:
        """No staff user, queue or deployment yet: a database nobody has set up."""
        for table in (schema.users, schema.queues, schema.deployments):
            if (await self.conn.execute(select(table.c.id).limit(1))).first() is not None:
                return False
        return True

    async def deployments(self) -> list[Deployment]:
        rows = await self.conn.execute(select(schema.deployments).order_by(schema.deployments.c.key))
        return [_deployment(row._mapping) for row in rows]

    async def update_deployment(self, deployment_id: str, **values: Any) -> None:
        d = schema.deployments
        await self.conn.execute(update(d).where(d.c.id == deployment_id).values(**values))

    async def insert_customer(self, **values: Any) -> Customer:
        values = {"id": new_id("cus"), "created_at": utcnow(), **values}
        await self.conn.execute(insert(schema.customers).values(**values))
        return Customer(**values)

    async def update_customer(self, customer_id: str, **values: Any) -> None:
        c = schema.customers
        await self.conn.execute(update(c).where(c.c.id == customer_id).values(**values))

    async def customer_by_external_id(self, deployment_id: str | None, external_id: str | None) -> Customer | None:
        c = schema.customers
        condition = and_(c.c.deployment_id == deployment_id, c.c.external_id == external_id)
        row = (await self.conn.execute(select(c).where(condition))).first()
        return None if row is None else Customer(**row._mapping)

    # -- conversations --------------------------------------------------------------------------
    async def conversation_by_client_id(self, customer_id: str, client_id: str) -> Conversation | None:
        """A customer's conversation by the retry key its client chose: keys are the customer's own."""
        c = schema.conversations
        condition = and_(c.c.customer_id == customer_id, c.c.client_id == client_id)
        row = (await self.conn.execute(select(c).where(condition))).first()
        return None if row is None else Conversation(**row._mapping)

    async def insert_conversation(self, **values: Any) -> Conversation:
        now = utcnow()
        values = {"created_at": now, "updated_at": now, "closed_at": None, "assignee_id": None, **values}
        await self.conn.execute(insert(schema.conversations).values(**values))
        return Conversation(**values)

    async def list_conversations(
        self,
        *,
        customer_id: str | None = None,
        assignee_id: str | None = None,
        status: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int,
    ) -> list[Conversation]:
        """Newest first; ``after`` is the (created_at, id) of the last row of the previous page."""
        c = schema.conversations
        query = select(c)
        if customer_id is not None:
            query = query.where(c.c.customer_id == customer_id)
        if assignee_id is not None:
            query = query.where(c.c.assignee_id == assignee_id)
        if status is not None:
            query = query.where(c.c.status == status)
        if after is not None:
            created, last_id = after
            query = query.where(or_(c.c.created_at < created, and_(c.c.created_at == created, c.c.id < last_id)))
        rows = await self.conn.execute(query.order_by(c.c.created_at.desc(), c.c.id.desc()).limit(limit))
        return [Conversation(**row._mapping) for row in rows]

    async def add_participant(self, conversation_id: str, participant_id: str, kind: str) -> None:
        await self.conn.execute(
            insert(schema.participants).values(
                conversation_id=conversation_id, participant_id=participant_id, kind=kind, joined_at=utcnow()
            )
        )

    async def remove_participant(self, conversation_id: str, participant_id: str) -> None:
        p = schema.participants
        await self.conn.execute(
            update(p)
            .where(p.c.conversation_id == conversation_id, p.c.participant_id == participant_id)
            .where(p.c.left_at.is_(None))
            .values(left_at=utcnow())
        )

    async def participants(self, conversation_id: str) -> list[Any]:
        p = schema.participants
        rows = await self.conn.execute(
            select(p.c.participant_id, p.c.kind, p.c.joined_at, p.c.left_at)
            .where(p.c.conversation_id == conversation_id)
            .order_by(p.c.id)
        )
        return list(rows.all())


def _deployment(row: Any) -> Deployment:
    return Deployment(
        id=row["id"],
        key=row["key"],
        queue_id=row["queue_id"],
        allowed_origins=tuple(row["allowed_origins"]),
        pre_chat_fields=tuple(row["pre_chat_fields"]),
        business_hours=row["business_hours"],
        identity_key=row["identity_key"],
        created_at=row["created_at"],
        greeting=row.get("greeting"),
        retention_days=row.get("retention_days"),
        attachment_max_bytes=row.get("attachment_max_bytes"),
        attachment_types=None if row.get("attachment_types") is None else tuple(row["attachment_types"]),
    )


def _queue(row: Any) -> Queue:
    return Queue(row.id, row.name, row.created_at, row.bot_user_id, tuple(row.dispositions or ()))
