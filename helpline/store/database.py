"""Opening the database, and the transaction discipline that makes event ids trustworthy.

Streams resume from an event id, so an event with a smaller id must never become visible after one
with a larger id: a reader that saw id 11 would skip id 10 forever. Every write therefore holds the
*append lock* from the moment it may allocate an id until its events are committed **and published**
on the bus. In one process that is an ``asyncio.Lock``; on PostgreSQL it is also a session advisory lock,
so several server processes on one database still commit and publish in id order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from helpline.config import ConfigurationError
from helpline.domain.models import StoredEvent
from helpline.errors import Conflict, HelplineError, Unavailable
from helpline.store import schema
from helpline.store.migrate import upgrade
from helpline.store.session import StoreSession
from helpline.store.urls import async_url, redact

logger = logging.getLogger("helpline.store")

Publisher = Callable[[Sequence[StoredEvent]], Awaitable[None]]

# An arbitrary, fixed key for pg_advisory_lock: "helpline" in ASCII, folded into a signed 64-bit int.
APPEND_LOCK_KEY = 0x68656C706C696E65 - (1 << 63)


class Store:
    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._append_lock = asyncio.Lock()
        self._publish: Publisher | None = None

    def on_commit(self, publish: Publisher) -> None:
        """Register where committed events go (the bus); called while the append lock is still held."""
        self._publish = publish

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.read() as session:
            await session.conn.execute(text("SELECT 1"))

    async def head(self) -> int:
        """The newest event id (0 for an empty log): where a brand-new stream starts."""
        async with self.read() as session:
            return await session.head()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[StoreSession]:
        try:
            async with self.engine.connect() as conn:
                yield StoreSession(conn, is_sqlite=self.is_sqlite)
        except HelplineError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[StoreSession]:
        """A transaction that may append events; commits, publishes, then releases the append lock."""
        try:
            async with self._append_lock, self.engine.connect() as conn:
                conn = await conn.execution_options(helpline_write=True)
                await self._lock_across_processes(conn)
                try:
                    session = StoreSession(conn, is_sqlite=self.is_sqlite)
                    async with conn.begin():
                        yield session
                    if session.appended and self._publish is not None:
                        await self._publish(session.appended)
                finally:
                    await self._unlock_across_processes(conn)
        except HelplineError:
            raise
        except IntegrityError:
            # The domain checks before it writes, so this is a backstop (e.g. a unique key raced by a
            # writer outside Helpline); it means "conflict", not "the database is down".
            raise Conflict("the write conflicts with existing data; re-read and retry") from None
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def _lock_across_processes(self, conn: AsyncConnection) -> None:
        if not self.is_sqlite:
            await conn.execute(select(func.pg_advisory_lock(APPEND_LOCK_KEY)))
            await conn.commit()

    async def _unlock_across_processes(self, conn: AsyncConnection) -> None:
        if not self.is_sqlite and not conn.closed and not conn.invalidated:
            try:
                await conn.execute(select(func.pg_advisory_unlock(APPEND_LOCK_KEY)))
                await conn.commit()
            except DBAPIError:  # the connection is broken; PostgreSQL drops its locks with it
                await conn.invalidate()


def _unavailable(exc: BaseException) -> Unavailable:
    logger.warning("database error: %s", type(exc).__name__, exc_info=exc)
    return Unavailable("the database is unavailable; retry shortly", retry_after=2)


def _sqlite_begin(conn: Any) -> None:
    # pysqlite would otherwise run SELECTs outside any transaction and BEGIN only at the first write,
    # so "check, then insert" would not be atomic between processes. Write transactions take SQLite's
    # write lock up front (BEGIN IMMEDIATE): SQLite itself then orders writers across processes.
    immediate = conn.get_execution_options().get("helpline_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets streams read while a message is written; synchronous=FULL because a 2xx means the
    # message survives a power cut (PROTOCOL.md "Conversations"); busy_timeout covers the CLI writing
    # while the server runs.
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _sqlite_begin
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


async def open_store(url: str, *, migrate: bool | None = None) -> Store:
    """Connect to ``url``; apply migrations (by default only for SQLite, the embedded default).

    PostgreSQL deployments run ``helpline db upgrade`` explicitly so that a rolling deploy never has
    two versions racing to migrate.
    """
    engine = create_async_engine(async_url(url), pool_pre_ping=False)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    store = Store(url, engine)
    should_migrate = store.is_sqlite if migrate is None else migrate
    try:
        if should_migrate:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade)
        else:
            async with engine.connect() as conn:
                await conn.execute(select(func.count()).select_from(schema.queues))
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        raise ConfigurationError(
            f"cannot open database {redact(url)}: {type(exc).__name__}"
            + ("" if should_migrate else " (has 'helpline db upgrade' been run?)")
        ) from exc
    return store
