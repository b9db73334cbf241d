"""Webhook endpoints and their delivery outbox: the queries, and the subscription table every append reads.

A delivery row is written by :meth:`StoreSession.append` in the event's own transaction, so an event
that committed always has its deliveries, even if the node dies the instant after ``COMMIT`` (issue 14).
Which endpoints want an event type is held in memory (:class:`WebhookTargets`): with no endpoint
registered an append pays one dictionary lookup and no statement.

Claims: a node takes due rows for itself by writing ``claimed_by`` and a lease (``claim_expires_at``); a
row whose lease ran out is due again, so the deliveries of a node that died are taken over. On
PostgreSQL the claim's ``SELECT`` is ``FOR UPDATE SKIP LOCKED``: it never waits for a row another
transaction holds (an admin's redeliver, another node's claim), it passes it by.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.events import EventType
from helpline.records import Delivery, Webhook
from helpline.store import schema
from helpline.store.statements import DriverStatements, Parameters, processed

WILDCARD = "*"


class WebhookTargets:
    """Event type → the enabled endpoints that subscribe to it, read by every append.

    Rebuilt from the table whenever an endpoint changes on this node, when another node says so over
    the bus, and every few seconds besides (domain/webhooks.py), so a node that missed a bus message is
    wrong for a few seconds at most.
    """

    __slots__ = ("_by_type", "_every", "version")

    def __init__(self) -> None:
        self._by_type: dict[str, tuple[str, ...]] = {}
        self._every: tuple[str, ...] = ()
        self.version = 0

    def replace(self, hooks: Iterable[Webhook]) -> None:
        by_type: dict[str, list[str]] = {}
        every: list[str] = []
        for hook in hooks:
            if not hook.enabled:
                continue  # disabled: nothing is queued for it; paused: queued, and sent when resumed
            if WILDCARD in hook.events:
                every.append(hook.id)
            for event_type in hook.events:
                if event_type != WILDCARD:
                    by_type.setdefault(event_type, []).append(hook.id)
        self._every = tuple(every)
        self._by_type = {t: tuple(sorted(set(ids) - set(every))) for t, ids in by_type.items()}
        self.version += 1

    @property
    def empty(self) -> bool:
        return not self._by_type and not self._every

    def for_type(self, event_type: str) -> tuple[str, ...]:
        if not self._every:
            return self._by_type.get(event_type, ())
        return self._every + self._by_type.get(event_type, ())


def outbox_step(
    statements: DriverStatements,
    webhook_ids: Sequence[str],
    event_type: str,
    conversation_id: str | None,
    now: datetime,
) -> tuple[str, Parameters]:
    """The driver statement that queues one event for ``webhook_ids``; its id comes from the first step."""
    d = schema.webhook_deliveries
    columns = ("webhook_id", "event_id", "event_type", "conversation_id", "status", "attempts")
    width = len(columns) + 2
    marks = statements.placeholders(width * len(webhook_ids))
    rows = ", ".join(f"({', '.join(marks[n * width : (n + 1) * width])})" for n in range(len(webhook_ids)))
    sql = f"INSERT INTO {d.name} ({', '.join(columns)}, next_attempt_at, created_at) VALUES {rows}"  # noqa: S608
    when = processed(now, statements.bind(d.c.created_at))

    def values(results: list[list[Any]]) -> list[Any]:
        event_id = int(results[0][0][0])
        return [
            value
            for webhook_id in webhook_ids
            for value in (webhook_id, event_id, event_type, conversation_id, "pending", 0, when, when)
        ]

    return sql, values


class WebhookQueries:
    conn: AsyncConnection
    is_sqlite: bool

    # -- endpoints ---------------------------------------------------------------------------------
    async def insert_webhook(self, **values: Any) -> Webhook:
        await self.conn.execute(insert(schema.webhooks).values(**values))
        found = await self.webhook(values["id"])
        assert found is not None
        return found

    async def webhook(self, webhook_id: str) -> Webhook | None:
        w = schema.webhooks
        row = (await self.conn.execute(select(w).where(w.c.id == webhook_id))).first()
        return None if row is None else _webhook(row)

    async def webhooks(self) -> list[Webhook]:
        w = schema.webhooks
        return [_webhook(row) for row in await self.conn.execute(select(w).order_by(w.c.created_at, w.c.id))]

    async def update_webhook(self, webhook_id: str, **values: Any) -> None:
        w = schema.webhooks
        await self.conn.execute(update(w).where(w.c.id == webhook_id).values(**values))

    async def delete_webhook(self, webhook_id: str) -> None:
        d, w = schema.webhook_deliveries, schema.webhooks
        await self.conn.execute(delete(d).where(d.c.webhook_id == webhook_id))
        await self.conn.execute(delete(w).where(w.c.id == webhook_id))

    # -- the outbox ----------------------------------------------------------------------------------
    async def insert_test_delivery(self, webhook_id: str, body: str, now: datetime) -> int:
        d = schema.webhook_deliveries
        result = await self.conn.execute(
            insert(d)
            .values(
                webhook_id=webhook_id,
                event_id=None,
                event_type=EventType.WEBHOOK_TEST,
                conversation_id=None,
                payload=body,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .returning(d.c.id)
        )
        return int(result.scalar_one())

    async def claim_deliveries(
        self, webhook_id: str, now: datetime, limit: int, node: str, lease_until: datetime
    ) -> list[Delivery]:
        """Up to ``limit`` due deliveries of one endpoint, claimed for ``node`` until ``lease_until``.

        Due: pending, its time has come, nobody holds a live claim on it, and no earlier delivery of the
        same conversation to the same endpoint is still pending (so a conversation's events go in order,
        one at a time; conversations go in parallel).
        """
        d = schema.webhook_deliveries
        earlier = d.alias("earlier")
        blocked = (
            select(earlier.c.id)
            .where(
                earlier.c.webhook_id == d.c.webhook_id,
                earlier.c.conversation_id == d.c.conversation_id,
                earlier.c.status == "pending",
                earlier.c.id < d.c.id,
            )
            .exists()
        )
        query = (
            select(d.c.id)
            .where(
                d.c.webhook_id == webhook_id,
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                or_(d.c.claim_expires_at.is_(None), d.c.claim_expires_at < now),
                ~blocked,
            )
            .order_by(d.c.id)
            .limit(limit)
        )
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True, of=d)
        ids = [int(row.id) for row in await self.conn.execute(query)]
        if not ids:
            return []
        await self.conn.execute(update(d).where(d.c.id.in_(ids)).values(claimed_by=node, claim_expires_at=lease_until))
        return await self.deliveries_with_bodies(ids)

    async def deliveries_with_bodies(self, ids: list[int]) -> list[Delivery]:
        d, e = schema.webhook_deliveries, schema.events
        rows = await self.conn.execute(
            select(d, e.c.payload.label("event_payload"))
            .select_from(d.outerjoin(e, e.c.id == d.c.event_id))
            .where(d.c.id.in_(ids))
            .order_by(d.c.id)
        )
        found = []
        for row in rows:
            body = row.payload
            if row.event_id is not None and row.event_payload is not None:
                body = f'{{"id":{int(row.event_id)},{row.event_payload[1:]}'  # the wire JSON (session.with_id)
            found.append(_delivery(row, body))
        return found

    async def finish_delivery(self, delivery_id: int, node: str, **values: Any) -> bool:
        """Record an attempt's outcome, if ``node`` still holds the claim (False: it was taken over)."""
        d = schema.webhook_deliveries
        result = await self.conn.execute(
            update(d)
            .where(d.c.id == delivery_id, d.c.claimed_by == node, d.c.status == "pending")
            .values(claimed_by=None, claim_expires_at=None, **values)
        )
        return bool(result.rowcount)

    async def delivery(self, webhook_id: str, delivery_id: int) -> Delivery | None:
        d = schema.webhook_deliveries
        row = (await self.conn.execute(select(d).where(d.c.id == delivery_id, d.c.webhook_id == webhook_id))).first()
        return None if row is None else _delivery(row, None)

    async def deliveries(self, webhook_id: str, *, before: int | None, limit: int) -> list[Delivery]:
        """The delivery log, newest first."""
        d = schema.webhook_deliveries
        query = select(d).where(d.c.webhook_id == webhook_id)
        if before is not None:
            query = query.where(d.c.id < before)
        rows = await self.conn.execute(query.order_by(d.c.id.desc()).limit(limit))
        return [_delivery(row, None) for row in rows]

    async def requeue_delivery(self, delivery_id: int, now: datetime) -> None:
        d = schema.webhook_deliveries
        await self.conn.execute(
            update(d)
            .where(d.c.id == delivery_id)
            .values(status="pending", next_attempt_at=now, claimed_by=None, claim_expires_at=None, delivered_at=None)
        )

    async def retry_now(self, webhook_id: str, now: datetime) -> None:
        """An endpoint resumed: everything it has pending is due at once."""
        d = schema.webhook_deliveries
        await self.conn.execute(
            update(d).where(d.c.webhook_id == webhook_id, d.c.status == "pending").values(next_attempt_at=now)
        )

    async def any_due(self, webhook_ids: list[str], now: datetime) -> bool:
        """Whether one of these endpoints has a delivery to claim now (a read: an idle poll writes nothing)."""
        if not webhook_ids:
            return False
        d = schema.webhook_deliveries
        query = (
            select(d.c.id)
            .where(
                d.c.status == "pending",
                d.c.webhook_id.in_(webhook_ids),
                d.c.next_attempt_at <= now,
                or_(d.c.claim_expires_at.is_(None), d.c.claim_expires_at < now),
            )
            .limit(1)
        )
        return (await self.conn.execute(query)).first() is not None

    async def count_attempt(self, webhook_id: str, *, succeeded: bool, pause_after: int) -> bool:
        """Count an attempt towards the endpoint's failures in a row; True when this one paused it."""
        w = schema.webhooks
        if succeeded:
            await self.conn.execute(update(w).where(w.c.id == webhook_id, w.c.failures != 0).values(failures=0))
            return False
        await self.conn.execute(update(w).where(w.c.id == webhook_id).values(failures=w.c.failures + 1))
        result = await self.conn.execute(
            update(w)
            .where(w.c.id == webhook_id, w.c.failures >= pause_after, w.c.paused.is_(False))
            .values(paused=True)
        )
        return bool(result.rowcount)

    async def pending_count(self, webhook_id: str) -> int:
        d = schema.webhook_deliveries
        query = select(func.count()).where(d.c.webhook_id == webhook_id, d.c.status == "pending")
        return int((await self.conn.execute(query)).scalar_one())

    async def prune_deliveries(self, before: datetime) -> None:
        """The log keeps finished deliveries for a while; pending ones are never pruned."""
        d = schema.webhook_deliveries
        await self.conn.execute(delete(d).where(and_(d.c.status != "pending", d.c.created_at < before)))


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        events=tuple(row.events),
        secret=row.secret,
        enabled=bool(row.enabled),
        paused=bool(row.paused),
        failures=int(row.failures),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _delivery(row: Any, body: str | None) -> Delivery:
    return Delivery(
        id=int(row.id),
        webhook_id=row.webhook_id,
        event_id=None if row.event_id is None else int(row.event_id),
        event_type=row.event_type,
        conversation_id=row.conversation_id,
        status=row.status,
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        last_duration_ms=row.last_duration_ms,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        body=body,
    )
