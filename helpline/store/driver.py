"""The statements every message runs, sent to the database driver without SQLAlchemy's executor.

Measured on the bench machine (``bench/RESULTS.md``): one SQLAlchemy-Core ``SELECT`` by key costs about
300 µs of CPU on aiosqlite and 250 µs on asyncpg, the same query on the driver connection 45 µs; a
message ran six of them. So the statements on the hottest paths (a message's context and its append,
a stream's replay and the log's bounds, the principal reads behind authentication) are rendered once
per dialect here and executed on the driver connection that the SQLAlchemy connection wraps, inside
the same transaction. A message is now two statements: its context, then its event with recipients and
the conversation touch (one data-modifying statement on PostgreSQL, one thread hop on SQLite).
Values go through SQLAlchemy's own bind and result processors for each column, so a row written or
read here is exactly what the Core path writes or reads (the store contract suite checks both paths
against each other).

Driver errors are translated by ``store.failures``, as Core's are: a constraint violation is a
:class:`~helpline.errors.Conflict`, anything else from the driver an :class:`~helpline.errors.Unavailable`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Column, Table
from sqlalchemy.engine import Dialect

from helpline.store import schema
from helpline.store.failures import unavailable, write_conflict

Processor = Callable[[Any], Any] | None

_CONSTRAINT: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
# InternalClientError is what asyncpg raises when its protocol state is broken under it (a terminated
# backend in the middle of a statement): a connection failure like the others, not a bug of ours.
POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, *POSTGRES_ERRORS)


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

    @lru_cache(maxsize=1)  # noqa: B019
    def log_bounds(self) -> str:
        e, h = schema.events, schema.log_state
        return (
            f"SELECT (SELECT max(id) FROM {e.name}), (SELECT min(id) FROM {e.name}), "
            f"(SELECT horizon FROM {h.name} WHERE id = 1)"
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


async def fetch_steps(
    driver: Any, is_sqlite: bool, steps: Sequence[tuple[str, Parameters]], *, on_loop: bool = False
) -> list[list[Any]]:
    """Run statements in order and return each one's rows.

    A step's parameters may be a function of the rows before it (an insert's new id, say). asyncpg gets
    one call per step. On SQLite every step runs in **one** hop to aiosqlite's thread, through its
    (private, long-stable) ``_execute`` and ``_conn``: a hop costs about as much CPU as the statement.

    ``on_loop`` (SQLite's writer connection only) runs them on the event loop with no hop at all. That
    is safe and short because the writer's transaction already holds SQLite's write lock (``BEGIN
    IMMEDIATE``, sent from aiosqlite's thread, is the only statement that can wait for another process),
    so these statements never wait on a lock; they touch pages that are in memory, and the ``COMMIT`` with
    its fsync still runs in the thread. Only the writer task uses that connection, one statement at a
    time, so the two threads never use it at once (it is opened with ``check_same_thread=False``).
    """
    with translated_errors():
        if is_sqlite:
            if on_loop:
                return _run_steps(driver._conn, steps)
            done: list[list[Any]] = await driver._execute(partial(_run_steps, driver._conn, steps))
            return done
        results: list[list[Any]] = []
        for sql, parameters in steps:
            values = parameters(results) if callable(parameters) else parameters
            results.append(list(await driver.fetch(sql, *values)))
        return results


async def run_script(driver: Any, statements: Sequence[str]) -> None:
    """PostgreSQL: statements without parameters in **one** round trip (asyncpg's simple protocol)."""
    with translated_errors():
        await driver.execute("; ".join(statements))


@contextmanager
def translated_errors() -> Iterator[None]:
    """Driver errors as Core's are translated: a broken constraint is a 409, anything else a 503."""
    try:
        yield
    except _CONSTRAINT:
        raise write_conflict() from None
    except _ERRORS as exc:
        raise unavailable(exc) from exc


class ReaderBusy(Exception):
    """The loop's SQLite reader would have to wait (it never does): read through the pool instead."""


def read_on_loop(connection: sqlite3.Connection, steps: Sequence[tuple[str, Parameters]]) -> list[list[Any]]:
    """Statements on SQLite's loop reader (``Store.hot_read``): each is its own snapshot, no hop.

    The reader has ``busy_timeout=0``: in WAL mode a read waits for nobody, except in the rare moments
    SQLite resets the log or recovers it, and then :class:`ReaderBusy` sends the read to a thread
    rather than stall every stream on the loop.
    """
    with translated_errors():
        try:
            return _run_steps(connection, steps)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise ReaderBusy from exc
            raise


def _run_steps(connection: sqlite3.Connection, steps: Sequence[tuple[str, Parameters]]) -> list[list[Any]]:
    results: list[list[Any]] = []
    for sql, parameters in steps:
        values = parameters(results) if callable(parameters) else parameters
        results.append(connection.execute(sql, tuple(values)).fetchall())
    return results


def processed(value: Any, processor: Processor) -> Any:
    return value if processor is None or value is None else processor(value)
