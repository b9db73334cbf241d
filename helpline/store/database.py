"""Opening the database, and the transaction discipline that makes event ids trustworthy.

Streams resume from an event id, so an event with a smaller id must never become visible after one
with a larger id: a reader that saw id 11 would skip id 10 forever. Every write therefore runs in the
one writer task of :mod:`helpline.store.commit`, which allocates ids, commits **and publishes** a batch
before it begins the next; on PostgreSQL it also holds a session advisory lock for the batch, so several
server processes on one database still commit and publish in id order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction, create_async_engine

from helpline.config import ConfigurationError
from helpline.errors import HelplineError
from helpline.store import schema
from helpline.store.commit import GroupCommit, Publisher
from helpline.store.driver import DriverStatements
from helpline.store.failures import unavailable
from helpline.store.migrate import upgrade
from helpline.store.session import StoreSession
from helpline.store.urls import async_url, redact

# An arbitrary, fixed key for pg_advisory_lock: "helpline" in ASCII, folded into a signed 64-bit int.
APPEND_LOCK_KEY = 0x68656C706C696E65 - (1 << 63)


class Store:
    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.statements = DriverStatements(engine.dialect)
        self.commits = GroupCommit(self._writer_connection, self._begin_batch, self._end_batch, self._writer_session)
        self._writer_driver: tuple[AsyncConnection, Any] | None = None

    def session(self, conn: AsyncConnection) -> StoreSession:
        return StoreSession(conn, self.statements)

    def _writer_session(self, conn: AsyncConnection) -> StoreSession:
        """A turn's session: on SQLite its hot statements run on the loop (``fetch_steps``' ``on_loop``)."""
        session = StoreSession(conn, self.statements, on_loop=self.is_sqlite)
        if self._writer_driver is not None and self._writer_driver[0] is conn:
            session._driver_connection = self._writer_driver[1]  # looked up once per connection, not per turn
        return session

    def on_commit(self, publish: Publisher) -> None:
        """Register where committed events go (the bus); called before the next batch may begin."""
        self.commits.publish = publish

    async def close(self) -> None:
        await self.commits.close()
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
                yield self.session(conn)
        except HelplineError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable(exc) from exc

    def write(self) -> AbstractAsyncContextManager[StoreSession]:
        """A turn in a write transaction that may append events (see :mod:`helpline.store.commit`).

        The ``async with`` body runs the caller's checks and statements; leaving it waits until the
        batch holding them has committed and published, so code after it may answer 2xx.
        """
        return self.commits.turn()

    async def _writer_connection(self) -> AsyncConnection:
        conn = await self.engine.connect()
        try:
            conn = await conn.execution_options(helpline_write=True)  # SQLite: BEGIN IMMEDIATE
            self._writer_driver = (conn, (await conn.get_raw_connection()).driver_connection)
            return conn
        except BaseException:
            await conn.close()
            raise

    async def _begin_batch(self, conn: AsyncConnection, first: bool) -> AsyncTransaction:
        """Begin a batch's transaction so that it has really started on the server.

        The hot statements go to the driver connection (store/driver.py), which would run outside any
        transaction if SQLAlchemy had not sent a statement yet. SQLite's ``BEGIN IMMEDIATE`` is sent by
        the ``begin`` listener; on PostgreSQL the batch's first statement takes the append lock, which
        outlives the transaction (a session lock) until ``_end_batch``.
        """
        if self.is_sqlite:
            # One hop to aiosqlite's thread (SQLAlchemy's own BEGIN took three: cursor, execute, close);
            # the ``begin`` listener then sees the transaction open and sends nothing.
            driver = await self._driver_of(conn)
            try:
                await driver._execute(driver._conn.execute, "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise unavailable(exc) from exc
            return await conn.begin()
        transaction = await conn.begin()
        await conn.execute(select(func.pg_advisory_lock(APPEND_LOCK_KEY)) if first else text("SELECT 1"))
        return transaction

    async def _driver_of(self, conn: AsyncConnection) -> Any:
        if self._writer_driver is not None and self._writer_driver[0] is conn:
            return self._writer_driver[1]
        return (await conn.get_raw_connection()).driver_connection

    async def _end_batch(self, conn: AsyncConnection) -> bool:
        """Release the append lock on PostgreSQL; False when the connection is no longer usable."""
        if conn.closed or conn.invalidated:
            return False
        if self.is_sqlite:
            return True
        try:
            await conn.execute(select(func.pg_advisory_unlock(APPEND_LOCK_KEY)))
            await conn.commit()
        except DBAPIError:  # the connection is broken; PostgreSQL drops its locks with it
            await conn.invalidate()
            return False
        return True


def _sqlite_begin(conn: Any) -> None:
    # pysqlite would otherwise run SELECTs outside any transaction and BEGIN only at the first write,
    # so "check, then insert" would not be atomic between processes. Write transactions take SQLite's
    # write lock up front (BEGIN IMMEDIATE): SQLite itself then orders writers across processes.
    if conn.connection.driver_connection._conn.in_transaction:
        return  # the writer sent its BEGIN IMMEDIATE itself (Store._begin_batch)
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
    # Reads (authentication refreshes, replays, listings) run concurrently; connections beyond the pool
    # are opened and closed per use (on SQLite a thread each), so the pool is sized for a busy node.
    parsed = async_url(url)
    # SQLite's writer runs its hot statements from the loop's thread (store/driver.py, fetch_steps).
    connect_args = {"check_same_thread": False} if parsed.get_backend_name() == "sqlite" else {}
    engine = create_async_engine(parsed, pool_pre_ping=False, pool_size=20, max_overflow=40, connect_args=connect_args)
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
