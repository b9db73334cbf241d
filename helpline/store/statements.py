"""The statements every message and stream open runs, rendered once per dialect for the driver.

Measured on the bench machine (``bench/RESULTS.md``): one SQLAlchemy-Core ``SELECT`` by key costs about
300 µs of CPU on aiosqlite and 250 µs on asyncpg, the same query on the driver connection 45 µs; a
message ran six of them. So the statements on the hottest paths (a message's context and its append,
a stream's replay and the log's bounds, the principal reads behind authentication) are rendered once
per dialect here and executed on the driver connection that the SQLAlchemy connection wraps, inside
the same transaction (:mod:`helpline.store.connection`, through the adapters in ``store/drivers/``).
A message is two statements: its context, then its event with recipients and the conversation touch
(one data-modifying statement on PostgreSQL, one thread hop on SQLite). Values go through
SQLAlchemy's own bind and result processors for each column, so a row written or read here is exactly
what the Core path writes or reads (the store contract suite checks both paths against each other).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.engine import Dialect

from helpline.store import schema

Processor = Callable[[Any], Any] | None


class DriverStatements:
    """The hot statements in one dialect's SQL, with the processors their columns need."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.is_sqlite = dialect.name == "sqlite"

    def placeholders(self, count: int, start: int = 1) -> list[str]:
        mark = "?" if self.is_sqlite else "$"  # numbered on both: a statement may use them out of order
        return [f"{mark}{n}" for n in range(start, start + count)]

    def bind(self, column: Column[Any]) -> Processor:
        processor: Processor = column.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        return processor

    def result(self, column: Column[Any]) -> Processor:
        processor: Processor = column.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
        return processor

    @lru_cache(maxsize=64)  # noqa: B019 - one instance per store, a handful of shapes
    def select_row(self, table: Table, for_update: bool) -> tuple[str, list[str], list[Processor]]:
        """``SELECT`` every column of ``table`` by primary key ``id``."""
        columns = list(table.c)
        (key,) = self.placeholders(1)
        sql = f"SELECT {', '.join(c.name for c in columns)} FROM {table.name} WHERE id = {key}"
        if for_update and not self.is_sqlite:
            sql += " FOR UPDATE"
        return sql, [c.name for c in columns], [self.result(c) for c in columns]

    @lru_cache(maxsize=64)  # noqa: B019
    def update_row(self, table: Table, names: tuple[str, ...]) -> tuple[str, list[Processor]]:
        """``UPDATE table SET names… WHERE id = ?``; parameters are the values in order, then the id."""
        marks = self.placeholders(len(names) + 1)
        assignments = ", ".join(f"{name} = {mark}" for name, mark in zip(names, marks, strict=False))
        sql = f"UPDATE {table.name} SET {assignments} WHERE id = {marks[-1]}"
        return sql, [self.bind(table.c[name]) for name in names]

    @lru_cache(maxsize=1)  # noqa: B019
    def insert_event(self) -> tuple[str, Processor]:
        e = schema.events
        marks = ", ".join(self.placeholders(5))
        sql = (
            f"INSERT INTO {e.name} (conversation_id, type, client_id, payload, created_at) "
            f"VALUES ({marks}) RETURNING id"
        )
        return sql, self.bind(e.c.created_at)

    @lru_cache(maxsize=64)  # noqa: B019
    def append_in_one_statement(self, changes: tuple[str, ...] | None) -> tuple[str, list[Processor]]:
        """PostgreSQL: the event, its recipients (``$6``, an array) and the conversation's ``changes``
        (``$7``…) in one statement, one round trip; returns the new id."""
        e, r, c = schema.events, schema.event_recipients, schema.conversations
        sql = (
            f"WITH ev AS (INSERT INTO {e.name} (conversation_id, type, client_id, payload, created_at) "
            f"VALUES ($1, $2, $3, $4, $5) RETURNING id), "
            f"rc AS (INSERT INTO {r.name} (principal_id, event_id) "
            f"SELECT principal, ev.id FROM ev, unnest($6::varchar[]) AS principal)"
        )
        processors: list[Processor] = []
        if changes:
            marks = self.placeholders(len(changes), start=7)
            assignments = ", ".join(f"{name} = {mark}" for name, mark in zip(changes, marks, strict=True))
            sql += f", up AS (UPDATE {c.name} SET {assignments} WHERE id = $1)"
            processors = [self.bind(c.c[name]) for name in changes]
        return sql + " SELECT id FROM ev", processors

    @lru_cache(maxsize=16)  # noqa: B019
    def insert_recipients(self, count: int) -> str:
        marks = self.placeholders(2 * count)
        rows = ", ".join(f"({marks[2 * n]}, {marks[2 * n + 1]})" for n in range(count))
        return f"INSERT INTO {schema.event_recipients.name} (principal_id, event_id) VALUES {rows}"

    @lru_cache(maxsize=1)  # noqa: B019
    def event_by_client_id(self) -> str:
        first, second = self.placeholders(2)
        return (
            f"SELECT id, type, conversation_id, payload FROM {schema.events.name} "
            f"WHERE conversation_id = {first} AND client_id = {second}"
        )

    @lru_cache(maxsize=2)  # noqa: B019
    def message_context(self, for_update: bool) -> tuple[str, list[str], list[Processor], Processor]:
        """One statement for everything a message checks: the conversation, an earlier message with the
        same client id, and the assignee's permissions (who may read the new entry)."""
        c, e, u = schema.conversations, schema.events, schema.users
        columns = list(c.c)
        conversation_id, client_id = self.placeholders(2)
        sql = (
            f"SELECT {', '.join('c.' + col.name for col in columns)}, "
            f"(SELECT u.permissions FROM {u.name} u WHERE u.id = c.assignee_id), "
            f"e.id, e.type, e.conversation_id, e.payload "
            f"FROM {c.name} c LEFT JOIN {e.name} e ON e.conversation_id = c.id AND e.client_id = {client_id} "
            f"WHERE c.id = {conversation_id}"
        )
        if for_update and not self.is_sqlite:
            sql += " FOR UPDATE OF c"
        processors = [self.result(col) for col in columns]
        return sql, [col.name for col in columns], processors, self.result(u.c.permissions)

    @lru_cache(maxsize=2)  # noqa: B019
    def conversation_events(self, before: bool) -> str:
        """A conversation's events after ``$2`` (or, with ``before``, before ``$2``, newest first), up to ``$3``."""
        conversation_id, bound, limit = self.placeholders(3)
        where = f"id < {bound} ORDER BY id DESC" if before else f"id > {bound} ORDER BY id"
        return (
            f"SELECT id, type, conversation_id, payload FROM {schema.events.name} "
            f"WHERE conversation_id = {conversation_id} AND {where} LIMIT {limit}"
        )

    @lru_cache(maxsize=1)  # noqa: B019
    def event_in_conversation(self) -> str:
        event_id, conversation_id = self.placeholders(2)
        return f"SELECT id FROM {schema.events.name} WHERE id = {event_id} AND conversation_id = {conversation_id}"

    @lru_cache(maxsize=1)  # noqa: B019
    def log_bounds(self) -> str:
        e, h = schema.events, schema.log_state
        return (
            f"SELECT (SELECT max(id) FROM {e.name}), (SELECT min(id) FROM {e.name}), "
            f"(SELECT horizon FROM {h.name} WHERE id = 1)"
        )

    @lru_cache(maxsize=1)  # noqa: B019
    def router_pulse(self) -> tuple[str, list[Processor]]:
        """What an idle router tick asks, in one statement of bounded cost whatever the queue's length:
        the log's head, how many offers are open, whether a present rep's streams are gone since ``$1``,
        whether an assigned conversation's customer has been silent since ``$2``. Each by index:
        events' key, ``ix_offers_pending``, the users (a few), the assigned end of ``ix_conversations_queue``."""
        e, o, u, c = schema.events, schema.offers, schema.users, schema.conversations
        presence_cutoff, silent_since = self.placeholders(2)
        sql = (
            f"SELECT (SELECT max(id) FROM {e.name}), "
            f"(SELECT count(*) FROM {o.name} WHERE status = 'pending'), "
            f"EXISTS (SELECT 1 FROM {u.name} WHERE presence <> 'offline' "
            f"AND (last_stream_at IS NULL OR last_stream_at < {presence_cutoff})), "
            f"EXISTS (SELECT 1 FROM {c.name} WHERE status = 'assigned' AND last_customer_at < {silent_since})"
        )
        return sql, [self.bind(u.c.last_stream_at), self.bind(c.c.last_customer_at)]

    @lru_cache(maxsize=64)  # noqa: B019
    def recipients_among(self, count: int) -> str:
        """``(event_id, principal_id)`` of ``event_recipients`` with an event in ``($1, $2]`` and one of
        ``count`` principals (``$3``…)."""
        after, upto, *principals = self.placeholders(count + 2)
        return (
            f"SELECT event_id, principal_id FROM {schema.event_recipients.name} "
            f"WHERE event_id > {after} AND event_id <= {upto} AND principal_id IN ({', '.join(principals)})"
        )

    @lru_cache(maxsize=2)  # noqa: B019
    def events_after(self, for_everyone: bool) -> str:
        """Events after ``$1`` (up to ``$2``), for the principal ``$3`` unless ``for_everyone``."""
        e, r = schema.events, schema.event_recipients
        after, limit, principal = self.placeholders(3)
        join = "" if for_everyone else f" JOIN {r.name} r ON r.event_id = e.id AND r.principal_id = {principal}"
        return (
            f"SELECT e.id, e.type, e.conversation_id, e.payload FROM {e.name} e{join} "
            f"WHERE e.id > {after} ORDER BY e.id LIMIT {limit}"
        )

    @lru_cache(maxsize=1)  # noqa: B019
    def user_permissions(self) -> tuple[str, Processor]:
        (key,) = self.placeholders(1)
        u = schema.users
        return f"SELECT permissions FROM {u.name} WHERE id = {key}", self.result(u.c.permissions)


Parameters = Sequence[Any] | Callable[[list[list[Any]]], Sequence[Any]]


def processed(value: Any, processor: Processor) -> Any:
    return value if processor is None or value is None else processor(value)
