"""The statements every message runs, sent to the database driver without SQLAlchemy's executor.

Measured on the bench machine (``bench/RESULTS.md``): one SQLAlchemy-Core ``SELECT`` by key costs about
300 µs of CPU on aiosqlite and 250 µs on asyncpg, the same query on the driver connection 45 µs; a
message runs six of them. So the few statements on that path (read a conversation, find a client id,
read an assignee's permissions, append an event and its recipients, touch the conversation) are
rendered once per dialect here and executed on the driver connection that the SQLAlchemy connection
wraps, inside the same transaction. Values go through SQLAlchemy's own bind and result processors for
each column, so a row written or read here is exactly what the Core path writes or reads (the store
contract suite checks both paths against each other).

Driver errors are translated here as Core's are in ``store.database``: a constraint violation is a
:class:`~helpline.errors.Conflict`, anything else from the driver an :class:`~helpline.errors.Unavailable`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Column, Table
from sqlalchemy.engine import Dialect

from helpline.errors import Conflict, Unavailable
from helpline.store import schema

logger = logging.getLogger("helpline.store")

Processor = Callable[[Any], Any] | None

_PG_CONSTRAINT: tuple[type[BaseException], ...] = (asyncpg.IntegrityConstraintViolationError,)
_PG_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError)
_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, *_PG_ERRORS)


class DriverStatements:
    """The hot statements in one dialect's SQL, with the processors their columns need."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.is_sqlite = dialect.name == "sqlite"

    def placeholders(self, count: int, start: int = 1) -> list[str]:
        return ["?"] * count if self.is_sqlite else [f"${n}" for n in range(start, start + count)]

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

    @lru_cache(maxsize=1)  # noqa: B019
    def user_permissions(self) -> tuple[str, Processor]:
        (key,) = self.placeholders(1)
        u = schema.users
        return f"SELECT permissions FROM {u.name} WHERE id = {key}", self.result(u.c.permissions)


async def fetch(driver: Any, is_sqlite: bool, sql: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
    """Run one statement on the driver connection and return its rows (one thread hop on SQLite)."""
    try:
        if is_sqlite:
            return list(await driver.execute_fetchall(sql, tuple(parameters)))
        return list(await driver.fetch(sql, *parameters))
    except sqlite3.IntegrityError:
        raise Conflict("the write conflicts with existing data; re-read and retry") from None
    except _PG_CONSTRAINT:
        raise Conflict("the write conflicts with existing data; re-read and retry") from None
    except _ERRORS as exc:
        logger.warning("database error: %s", type(exc).__name__, exc_info=exc)
        raise Unavailable("the database is unavailable; retry shortly", retry_after=2) from exc


def processed(value: Any, processor: Processor) -> Any:
    return value if processor is None or value is None else processor(value)
