"""The hot path, on the driver: the event log, and the rows a message or a stream open reads by key.

Appending an event (with its recipients and its conversation's touch), a message's context, a
stream's replay and the log's bounds, a conversation's entries, and the rows behind authentication
(a user or customer by id), a rep's presence to restore, a conversation by id and its updates: every
statement here is rendered once per dialect (:mod:`helpline.store.statements`) and runs on the driver
connection, never through SQLAlchemy's executor (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table

from helpline.events import EventType, encode
from helpline.records import Conversation, Customer, StoredEvent, User, utcnow
from helpline.store import schema
from helpline.store.connection import SessionConnection
from helpline.store.statements import Parameters, processed
from helpline.store.webhooks import outbox_step


class EventLog(SessionConnection):
    # -- the log ------------------------------------------------------------------------------
    async def append(
        self,
        type: EventType,
        payload: dict[str, Any],
        *,
        conversation_id: str | None,
        recipients: Iterable[str],
        client_id: str | None = None,
        conversation_changes: dict[str, Any] | None = None,
    ) -> StoredEvent:
        """Store one event; its id is allocated here, and its JSON is the envelope (``type``,
        ``conversation_id``, ``at``: :func:`helpline.events.envelope`) with ``id`` in front and ``payload`` after.

        ``conversation_changes`` updates the event's conversation in the same trip to the database
        (``updated_at`` is always set then): a message touches its conversation every time.
        """
        now = utcnow()
        stored_body = encode(type, conversation_id, payload, at=now)
        name = str(type)  # a plain str from here on (bound to the statement, framed, published): no enum costs
        sql, created_at = self.statements.insert_event()
        first = (conversation_id, name, client_id, stored_body, processed(now, created_at))
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
        hooks = self.webhook_targets.for_type(name) if self.webhook_targets is not None else ()
        if hooks:
            steps.append(outbox_step(self.statements, hooks, name, conversation_id, now))
            self.queued_deliveries += len(hooks)
        results = await self._fetch_steps(steps)
        event_id = int(results[0][0][0])
        stored = StoredEvent(event_id, name, conversation_id, with_id(event_id, stored_body), audience)
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

    async def recipients_among(self, after: int, upto: int, principals: list[str]) -> list[tuple[int, str]]:
        """Which of ``principals`` are recipients of the events in ``(after, upto]``: ``(event id,
        principal id)`` pairs. One primary-key range per principal (the key is ``(principal_id,
        event_id)``), so it costs what the principals asked about cost, not the size of the log."""
        found: list[tuple[int, str]] = []
        for start in range(0, len(principals), 500):  # SQLite's bound-parameter limit, with room to spare
            chunk = principals[start : start + 500]
            rows = await self._fetch(self.statements.recipients_among(len(chunk)), after, upto, *chunk)
            found.extend((int(event_id), str(principal)) for event_id, principal in rows)
        return found

    async def events_after(self, principal_id: str | None, after: int, limit: int) -> list[StoredEvent]:
        """Events after ``after`` that ``principal_id`` may see (``None``: every event), oldest first."""
        if principal_id is None:
            rows = await self._fetch(self.statements.events_after(True), after, limit)
        else:
            rows = await self._fetch(self.statements.events_after(False), after, limit, principal_id)
        return [_stored(row) for row in rows]

    async def conversation_events(
        self,
        conversation_id: str,
        *,
        after: int | None,
        before: int | None,
        limit: int,
        exclude_types: Iterable[str] | None = None,
    ) -> list[StoredEvent]:
        """A page of one conversation's events, oldest first: after ``after``, or the last before ``before``.

        ``exclude_types`` leaves some types out (staff-only ones, for customers): read past them, so a page
        still holds ``limit`` entries when there are that many.
        """
        excluded = frozenset(exclude_types or ())
        found: list[StoredEvent] = []
        while True:
            if before is not None:
                rows = await self._fetch(self.statements.conversation_events(True), conversation_id, before, limit)
                rows.reverse()
            else:
                rows = await self._fetch(self.statements.conversation_events(False), conversation_id, after or 0, limit)
            page = [_stored(row) for row in rows]
            kept = [e for e in page if e.type not in excluded]
            found = kept + found if before is not None else found + kept
            if not excluded or len(page) < limit or len(found) >= limit:
                break
            if before is not None:
                before = page[0].id
            else:
                after = page[-1].id
        return found[-limit:] if before is not None else found[:limit]

    async def event_by_client_id(self, conversation_id: str, client_id: str) -> StoredEvent | None:
        rows = await self._fetch(self.statements.event_by_client_id(), conversation_id, client_id)
        return _stored(rows[0]) if rows else None

    async def event_in_conversation(self, conversation_id: str, event_id: int) -> bool:
        return bool(await self._fetch(self.statements.event_in_conversation(), event_id, conversation_id))

    # -- rows read by key on every request ----------------------------------------------------
    async def user_by_id(self, user_id: str) -> User | None:
        """A user by id: every authentication refresh asks."""
        row = await self._row(schema.users, user_id)
        return None if row is None else user_record(row)

    async def user_permissions(self, user_id: str) -> tuple[str, ...] | None:
        """Just a user's permissions (who may read a new entry), on the per-message path."""
        sql, processor = self.statements.user_permissions()
        rows = await self._fetch(sql, user_id)
        return None if not rows else tuple(processed(rows[0][0], processor))

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

    async def customer_by_id(self, customer_id: str) -> Customer | None:
        """A customer by id: every authentication refresh asks."""
        row = await self._row(schema.customers, customer_id)
        return None if row is None else Customer(**row)

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

    async def _row(self, table: Table, key: str, *, for_update: bool = False) -> dict[str, Any] | None:
        """One row of ``table`` by its ``id``, through the columns' own processors."""
        sql, names, processors = self.statements.select_row(table, for_update)
        rows = await self._fetch(sql, key)
        if not rows:
            return None
        return {name: processed(value, p) for name, value, p in zip(names, rows[0], processors, strict=True)}


def with_id(event_id: int, stored_body: str) -> str:
    """The wire JSON: the id is spliced in front so it need not be written back after the insert."""
    return f'{{"id":{event_id},{stored_body[1:]}'


def _stored(row: Any) -> StoredEvent:
    event_id, event_type, conversation_id, payload = row
    return StoredEvent(int(event_id), event_type, conversation_id, with_id(int(event_id), payload))


def user_record(row: Any) -> User:
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
