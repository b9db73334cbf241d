"""The email outbox's queries: enqueue (inside a caller's transaction), claim, finish, retry.

Claims are leases: a claimed row's ``locked_until`` is in the future while one worker sends it, and a
row whose lease ran out (its worker died mid-send) is claimable again. On PostgreSQL the claim selects
``FOR UPDATE SKIP LOCKED``, so workers on several nodes take different rows without waiting on each
other; SQLite has one writer at a time, so its claims are serial anyway.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.records import OutboxEmail
from helpline.store import schema

__all__ = ["OutboxQueries"]


class OutboxQueries:
    conn: AsyncConnection

    async def enqueue_email(
        self, *, kind: str, conversation_id: str | None, recipient: str, subject: str, body: str, now: datetime
    ) -> None:
        await self.conn.execute(
            insert(schema.email_outbox).values(
                kind=kind,
                conversation_id=conversation_id,
                recipient=recipient,
                subject=subject,
                body=body,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )

    async def extend_pending_email(
        self, conversation_id: str, kind: str, recipient: str, more: str, now: datetime
    ) -> bool:
        """Append ``more`` to an unsent, unclaimed email of this kind; False when there is none.

        A rep's three replies in a row make one email, not three. A row being sent right now is not
        touched (its lease is on), so the new text goes into a new email rather than being lost.
        """
        o = schema.email_outbox
        pending = and_(
            o.c.conversation_id == conversation_id,
            o.c.kind == kind,
            o.c.recipient == recipient,
            o.c.status == "pending",
            o.c.attempts == 0,
            or_(o.c.locked_until.is_(None), o.c.locked_until < now),
        )
        row = (await self.conn.execute(select(o.c.id, o.c.body).where(pending).order_by(o.c.id).limit(1))).first()
        if row is None:
            return False
        result = await self.conn.execute(update(o).where(o.c.id == row.id, pending).values(body=row.body + more))
        return bool(result.rowcount)

    async def count_emails(self, conversation_id: str, kind: str) -> int:
        o = schema.email_outbox
        rows = await self.conn.execute(select(o.c.id).where(o.c.conversation_id == conversation_id, o.c.kind == kind))
        return len(rows.all())

    async def email_due(self, now: datetime) -> bool:
        o = schema.email_outbox
        query = select(o.c.id).where(o.c.status == "pending", o.c.next_attempt_at <= now, _unlocked(now)).limit(1)
        return (await self.conn.execute(query)).first() is not None

    async def claim_emails(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxEmail]:
        """Take up to ``limit`` due rows for this worker until ``lease_until``; each claim counts an attempt.

        One statement, so that on SQLite its first step is a write (it waits for the lock instead of
        failing on a stale snapshot).
        """
        o = schema.email_outbox
        due = (
            select(o.c.id)
            .where(o.c.status == "pending", o.c.next_attempt_at <= now, _unlocked(now))
            .order_by(o.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders no locking clause
        )
        claim = (
            update(o)
            .where(o.c.id.in_(due.scalar_subquery()))
            .values(locked_until=lease_until, attempts=o.c.attempts + 1)
            .returning(o.c.id, o.c.kind, o.c.conversation_id, o.c.recipient, o.c.subject, o.c.body, o.c.attempts)
        )
        rows = await self.conn.execute(claim)
        return sorted((OutboxEmail(**row._mapping) for row in rows), key=lambda e: e.id)

    async def email_sent(self, email_id: int, when: datetime) -> None:
        o = schema.email_outbox
        await self.conn.execute(
            update(o).where(o.c.id == email_id).values(status="sent", sent_at=when, locked_until=None, last_error=None)
        )

    async def email_failed(self, email_id: int, error: str, retry_at: datetime | None) -> None:
        """Release a failed row for a retry at ``retry_at``, or give up on it (None)."""
        o = schema.email_outbox
        values: dict[str, object] = {"locked_until": None, "last_error": error[:1000]}
        if retry_at is None:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        await self.conn.execute(update(o).where(o.c.id == email_id).values(**values))

    async def touch_customers(self, customer_ids: list[str], when: datetime) -> None:
        c = schema.customers
        await self.conn.execute(update(c).where(c.c.id.in_(customer_ids)).values(last_stream_at=when))


def _unlocked(now: datetime) -> ColumnElement[bool]:
    o = schema.email_outbox
    return or_(o.c.locked_until.is_(None), o.c.locked_until < now)
