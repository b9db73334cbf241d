"""Queries, one method per question the domain asks, on one open connection.

A :class:`StoreSession` comes from ``Store.read()`` or ``Store.write()``; only a write session may
``append`` events, and what it appends is published by the store after commit.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.records import (
    Conversation,
    Customer,
    Deployment,
    Queue,
    StoredEvent,
    User,
    isoformat,
    new_id,
    utcnow,
)
from helpline.store import schema
from helpline.store.api_keys import ApiKeyQueries
from helpline.store.attachments import AttachmentQueries
from helpline.store.bots import BotQueries
from helpline.store.canned import CannedQueries
from helpline.store.driver import (
    DriverStatements,
    Parameters,
    fetch_steps,
    processed,
    read_on_loop,
    run_script,
)
from helpline.store.outbox import OutboxQueries
from helpline.store.ratings import RatingQueries
from helpline.store.routing import RoutingQueries
from helpline.store.webhooks import WebhookQueries, WebhookTargets, outbox_step

T = TypeVar("T")


async def finish_even_if_cancelled(operation: Awaitable[T]) -> T:
    """Await ``operation``; if the caller is cancelled meanwhile, let it finish first, then re-raise.

    A write turn's statements run on the store's one writer connection. Cancelling one half-way (a
    request task cancelled at shutdown, say) made SQLAlchemy invalidate that connection while aiosqlite
    still ran the statement: the unfinalized statement kept the closed SQLite connection, and its write
    lock, alive, and every later write waited for that lock in vain. A turn's statements are short; the
    cancellation is delivered as soon as the statement is done, and the turn is rolled back as usual.
    """
    task = asyncio.ensure_future(operation)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class _WriterConnection:
    """A write session's connection: every statement finishes even if its caller is cancelled."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await finish_even_if_cancelled(self._conn.execute(*args, **kwargs))

    async def get_raw_connection(self) -> Any:
        return await self._conn.get_raw_connection()


class _DriverStatementsOnly:
    def __getattr__(self, name: str) -> Any:
        raise TypeError("a hot-read session runs the driver statements only (Store.hot_read); use Store.read()")


class StoreSession(
    RoutingQueries,
    WebhookQueries,
    ApiKeyQueries,
    BotQueries,
    AttachmentQueries,
    OutboxQueries,
    RatingQueries,
    CannedQueries,
):
    def __init__(
        self,
        conn: AsyncConnection,
        statements: DriverStatements,
        *,
        on_loop: bool = False,
        writer: bool = False,
        webhook_targets: WebhookTargets | None = None,
    ) -> None:
        # The writer's sessions (store/commit.py) never abandon a SQLAlchemy statement half-way (see
        # finish_even_if_cancelled). Driver statements need no such care: SQLite's writer runs them on
        # the loop, where nothing interrupts them; asyncpg cancels a statement on the server and keeps
        # the connection.
        self.conn = cast(AsyncConnection, _WriterConnection(conn)) if writer else conn
        self.statements = statements
        self.is_sqlite = statements.is_sqlite
        self.on_loop = on_loop  # SQLite's writer: hot statements run on the event loop (store/driver.py)
        self.appended: list[StoredEvent] = []
        self.webhook_targets = webhook_targets  # which endpoints an appended event is queued for
        self.queued_deliveries = 0  # deliveries this session queued (the worker is woken after commit)
        self._driver_connection: Any = None
        self._loop_reader: sqlite3.Connection | None = None

    @classmethod
    def loop_reader(cls, connection: sqlite3.Connection, statements: DriverStatements) -> StoreSession:
        """A session of driver statements only, on SQLite's loop reader (``Store.hot_read``)."""
        session = cls(cast(AsyncConnection, _DriverStatementsOnly()), statements)
        session._loop_reader = connection
        return session

    async def _fetch(self, sql: str, *parameters: Any) -> list[Any]:
        """A hot statement on the driver connection, in this session's transaction (store/driver.py)."""
        return (await self._fetch_steps([(sql, parameters)]))[0]

    async def _fetch_steps(self, steps: list[tuple[str, Parameters]]) -> list[list[Any]]:
        if self._loop_reader is not None:
            return read_on_loop(self._loop_reader, steps)
        return await fetch_steps(await self._driver(), self.is_sqlite, steps, on_loop=self.on_loop)

    async def _driver(self) -> Any:
        if self._driver_connection is None:
            self._driver_connection = (await self.conn.get_raw_connection()).driver_connection
        return self._driver_connection

    # Savepoints for group commit (store/commit.py), on the driver: SQLAlchemy's cost ~250 µs each.
    async def savepoint(self, *, release_previous: bool) -> None:
        """A savepoint for this turn, releasing the previous turn's in the same hop or round trip."""
        statements = ["SAVEPOINT helpline_turn"]
        if release_previous:
            statements.insert(0, "RELEASE SAVEPOINT helpline_turn")
        await self._script(statements)

    async def rollback_to_savepoint(self) -> None:
        await self._script(["ROLLBACK TO SAVEPOINT helpline_turn", "RELEASE SAVEPOINT helpline_turn"])

    async def _script(self, statements: list[str]) -> None:
        if self.is_sqlite:
            await self._fetch_steps([(sql, ()) for sql in statements])
        else:
            await run_script(await self._driver(), statements)

    # -- events -------------------------------------------------------------------------------
    async def append(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        conversation_id: str | None,
        recipients: Iterable[str],
        client_id: str | None = None,
        conversation_changes: dict[str, Any] | None = None,
    ) -> StoredEvent:
        """Store one event; its id is allocated here and ``payload`` gains ``id``, ``type``, ``at``.

        ``conversation_changes`` updates the event's conversation in the same trip to the database
        (``updated_at`` is always set then): a message touches its conversation every time.
        """
        now = utcnow()
        body = {"type": type, "conversation_id": conversation_id, "at": isoformat(now), **payload}
        stored_body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        sql, created_at = self.statements.insert_event()
        first = (conversation_id, type, client_id, stored_body, processed(now, created_at))
        audience = frozenset(recipients)
        changes = None
        if conversation_changes is not None and conversation_id is not None:
            changes = {"updated_at": now, **conversation_changes}
        if not self.is_sqlite:  # one round trip
            names = tuple(sorted(changes)) if changes else None
            sql, processors = self.statements.append_in_one_statement(names)
            values = (
                [processed(changes[n], p) for n, p in zip(names, processors, strict=True)] if changes and names else []
            )
            steps: list[tuple[str, Parameters]] = [(sql, (*first, sorted(audience), *values))]
        else:  # one hop to the SQLite thread
            steps = [(sql, first)]
            if audience:
                principals = sorted(audience)

                def with_event_id(results: list[list[Any]]) -> list[Any]:
                    event_id = results[0][0][0]
                    return [value for principal in principals for value in (principal, event_id)]

                steps.append((self.statements.insert_recipients(len(audience)), with_event_id))
            if changes is not None and conversation_id is not None:
                steps.append(self._conversation_update(conversation_id, changes))
        # Webhooks (issue 14): the event's deliveries are queued in its own transaction. With no endpoint
        # subscribed this is one dictionary lookup, no statement.
        hooks = self.webhook_targets.for_type(type) if self.webhook_targets is not None else ()
        if hooks:
            steps.append(outbox_step(self.statements, hooks, type, conversation_id, now))
            self.queued_deliveries += len(hooks)
        results = await self._fetch_steps(steps)
        event_id = int(results[0][0][0])
        stored = StoredEvent(event_id, type, conversation_id, with_id(event_id, stored_body), audience)
        self.appended.append(stored)
        return stored

    async def message_context(
        self, conversation_id: str, client_id: str, *, for_update: bool
    ) -> tuple[Conversation | None, StoredEvent | None, tuple[str, ...] | None]:
        """The conversation, the earlier event with this client id, and its assignee's permissions."""
        sql, names, processors, permissions = self.statements.message_context(for_update)
        rows = await self._fetch(sql, conversation_id, client_id)
        if not rows:
            return None, None, None
        row = rows[0]
        width = len(names)
        values = zip(names, row[:width], processors, strict=True)
        conversation = Conversation(**{name: processed(value, processor) for name, value, processor in values})
        assignee_permissions = None if row[width] is None else tuple(processed(row[width], permissions))
        event_id, event_type, event_conversation, payload = row[width + 1 :]
        previous = None
        if event_id is not None:
            previous = StoredEvent(int(event_id), event_type, event_conversation, with_id(int(event_id), payload))
        return conversation, previous, assignee_permissions

    async def head(self) -> int:
        return (await self.log_bounds())[0]

    async def log_bounds(self) -> tuple[int, int]:
        """The newest and the oldest event id (0, 0 for an empty log), in one statement.

        Both respect the resume horizon (``log_state``): once retention or an erasure removed events up to
        it, the log's head is never below it and nothing at or before it counts as retained.
        """
        newest, oldest, horizon = (await self._fetch(self.statements.log_bounds()))[0]
        newest, oldest, horizon = int(newest or 0), int(oldest or 0), int(horizon or 0)
        if horizon <= 0:
            return newest, oldest
        return max(newest, horizon), max(oldest, horizon + 1)

    async def events_after(self, principal_id: str | None, after: int, limit: int) -> list[StoredEvent]:
        """Events after ``after`` that ``principal_id`` may see (``None``: every event), oldest first."""
        if principal_id is None:
            rows = await self._fetch(self.statements.events_after(True), after, limit)
        else:
            rows = await self._fetch(self.statements.events_after(False), after, limit, principal_id)
        return [StoredEvent(int(i), t, c, with_id(int(i), payload)) for i, t, c, payload in rows]

    async def recipients_among(self, after: int, upto: int, principals: list[str]) -> list[tuple[int, str]]:
        """Which of ``principals`` are recipients of the events in ``(after, upto]``: ``(event id,
        principal id)`` pairs. One primary-key range per principal (the key is ``(principal_id,
        event_id)``), so it costs what the principals asked about cost, not the size of the log."""
        r = schema.event_recipients
        found: list[tuple[int, str]] = []
        for start in range(0, len(principals), 500):  # SQLite's bound-parameter limit, with room to spare
            chunk = principals[start : start + 500]
            query = select(r.c.event_id, r.c.principal_id).where(
                r.c.principal_id.in_(chunk), r.c.event_id > after, r.c.event_id <= upto
            )
            found.extend((int(event_id), str(principal)) for event_id, principal in await self.conn.execute(query))
        return found

    async def conversation_events(
        self,
        conversation_id: str,
        *,
        after: int | None,
        before: int | None,
        limit: int,
        exclude_types: Iterable[str] | None = None,
    ) -> list[StoredEvent]:
        """A conversation's entries; ``exclude_types`` leaves some out (staff-only ones, for customers)."""
        e = schema.events
        query = select(e.c.id, e.c.type, e.c.conversation_id, e.c.payload).where(e.c.conversation_id == conversation_id)
        if exclude_types:
            query = query.where(e.c.type.not_in(list(exclude_types)))
        if before is not None:
            query = query.where(e.c.id < before).order_by(e.c.id.desc())
        else:
            query = query.where(e.c.id > (after or 0)).order_by(e.c.id)
        rows = list(await self.conn.execute(query.limit(limit)))
        if before is not None:
            rows.reverse()
        return [_stored(row) for row in rows]

    async def event_by_client_id(self, conversation_id: str, client_id: str) -> StoredEvent | None:
        rows = await self._fetch(self.statements.event_by_client_id(), conversation_id, client_id)
        if not rows:
            return None
        event_id, type, conv_id, payload = rows[0]
        return StoredEvent(int(event_id), type, conv_id, with_id(int(event_id), payload))

    async def event_in_conversation(self, conversation_id: str, event_id: int) -> bool:
        e = schema.events
        row = await self.conn.execute(select(e.c.id).where(e.c.id == event_id, e.c.conversation_id == conversation_id))
        return row.first() is not None

    async def use_stream_ticket(self, jti: str, expires_at: datetime) -> bool:
        """Record a ticket as spent; False when it was spent before (tickets are single use)."""
        t = schema.used_stream_tickets
        await self.conn.execute(delete(t).where(t.c.expires_at < utcnow()))
        if (await self.conn.execute(select(t.c.jti).where(t.c.jti == jti))).first() is not None:
            return False
        await self.conn.execute(insert(t).values(jti=jti, expires_at=expires_at))
        return True

    # -- users, queues, deployments, customers -------------------------------------------------
    async def insert_user(self, **values: Any) -> User:
        values = {"id": new_id("usr"), "created_at": utcnow(), "presence": "offline", **values}
        await self.conn.execute(insert(schema.users).values(**values))
        return _user(values)

    async def user_permissions(self, user_id: str) -> tuple[str, ...] | None:
        """Just a user's permissions (who may read a new entry), on the per-message path."""
        sql, processor = self.statements.user_permissions()
        rows = await self._fetch(sql, user_id)
        return None if not rows else tuple(processed(rows[0][0], processor))

    async def user(self, *, id: str | None = None, username: str | None = None) -> User | None:
        if id is not None:  # by id on the driver: every authentication refresh asks
            row = await self._row(schema.users, id)
            return None if row is None else _user(row)
        u = schema.users
        found = (await self.conn.execute(select(u).where(u.c.username == username))).first()
        return None if found is None else _user(found._mapping)

    async def presence_to_restore(self, user_id: str) -> str | None:
        """What a rep's presence was before it was marked disconnected; asked at every rep stream open."""
        row = await self._row(schema.users, user_id)
        return None if row is None else row["presence_before_disconnect"]

    async def rep_needs_reconnect(self, user_id: str) -> bool:
        """A rep's stream opens: is there a presence to give back, or a closed last stream to forget?"""
        row = await self._row(schema.users, user_id)
        if row is None:
            return False
        closed, seen = row.get("stream_closed_at"), row.get("last_stream_at")
        if closed is not None and (seen is None or closed.replace(tzinfo=None) >= seen.replace(tzinfo=None)):
            return True
        return row["presence_before_disconnect"] is not None

    async def _row(self, table: Any, key: str, *, for_update: bool = False) -> dict[str, Any] | None:
        """One row of ``table`` by its ``id``, on the driver, through the columns' own processors."""
        sql, names, processors = self.statements.select_row(table, for_update)
        rows = await self._fetch(sql, key)
        if not rows:
            return None
        return {name: processed(value, p) for name, value, p in zip(names, rows[0], processors, strict=True)}

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

    async def users(self) -> list[User]:
        rows = await self.conn.execute(select(schema.users).order_by(schema.users.c.username))
        return [_user(row._mapping) for row in rows]

    async def update_user(self, user_id: str, **values: Any) -> None:
        await self.conn.execute(update(schema.users).where(schema.users.c.id == user_id).values(**values))

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

    async def insert_deployment(self, **values: Any) -> Deployment:
        values = {"id": new_id("dep"), "created_at": utcnow(), **values}
        await self.conn.execute(insert(schema.deployments).values(**values))
        return _deployment(values)

    async def deployment(self, *, id: str | None = None, key: str | None = None) -> Deployment | None:
        d = schema.deployments
        condition = d.c.id == id if id is not None else d.c.key == key
        row = (await self.conn.execute(select(d).where(condition))).first()
        return None if row is None else _deployment(row._mapping)

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

    async def customer(
        self, *, id: str | None = None, deployment_id: str | None = None, external_id: str | None = None
    ) -> Customer | None:
        if id is not None:  # by id on the driver: every authentication refresh asks
            found = await self._row(schema.customers, id)
            return None if found is None else Customer(**found)
        c = schema.customers
        condition = and_(c.c.deployment_id == deployment_id, c.c.external_id == external_id)
        row = (await self.conn.execute(select(c).where(condition))).first()
        return None if row is None else Customer(**row._mapping)

    # -- conversations --------------------------------------------------------------------------
    async def insert_conversation(self, **values: Any) -> Conversation:
        now = utcnow()
        values = {"created_at": now, "updated_at": now, "closed_at": None, "assignee_id": None, **values}
        await self.conn.execute(insert(schema.conversations).values(**values))
        return Conversation(**values)

    async def conversation(self, conversation_id: str, *, for_update: bool = False) -> Conversation | None:
        row = await self._row(schema.conversations, conversation_id, for_update=for_update)
        return None if row is None else Conversation(**row)

    async def update_conversation(self, conversation_id: str, **values: Any) -> None:
        sql, parameters = self._conversation_update(conversation_id, {"updated_at": utcnow(), **values})
        await self._fetch(sql, *parameters)

    def _conversation_update(self, conversation_id: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
        names = tuple(sorted(values))
        sql, processors = self.statements.update_row(schema.conversations, names)
        parameters = [processed(values[name], p) for name, p in zip(names, processors, strict=True)]
        return sql, [*parameters, conversation_id]

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


def with_id(event_id: int, stored_body: str) -> str:
    """The wire JSON: the id is spliced in front so it need not be written back after the insert."""
    return f'{{"id":{event_id},{stored_body[1:]}'


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(int(row.id), row.type, row.conversation_id, with_id(int(row.id), row.payload))


def _queue(row: Any) -> Queue:
    return Queue(row.id, row.name, row.created_at, row.bot_user_id, tuple(row.dispositions or ()))


def _user(row: Any) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        permissions=tuple(row["permissions"]),
        max_concurrent=row["max_concurrent"],
        presence=row["presence"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        idle_since=row.get("idle_since"),
    )


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
