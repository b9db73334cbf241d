"""Opening the database, and the transaction discipline that makes event ids trustworthy.

Streams resume from an event id, so an event with a smaller id must never become visible after one
with a larger id: a reader that saw id 11 would skip id 10 forever. Every write therefore runs in the
one writer task of :mod:`helpline.store.commit`, which allocates ids, commits **and publishes** a batch
before it begins the next; it also holds a lock across processes for the batch (PostgreSQL's session
advisory lock, a file lock beside an SQLite database), so several server processes on one database
still commit and publish in id order.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction, create_async_engine

from helpline.config import ConfigurationError
from helpline.errors import HelplineError
from helpline.store import schema
from helpline.store.commit import GroupCommit, Publisher
from helpline.store.drivers import postgres, sqlite
from helpline.store.failures import DATABASE_ERRORS, translated
from helpline.store.migrate import upgrade
from helpline.store.session import StoreSession
from helpline.store.statements import DriverStatements
from helpline.store.webhooks import WebhookTargets
from helpline.urls import async_url, redact

T = TypeVar("T")
STARTUP_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, HelplineError)


class Store:
    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.statements = DriverStatements(engine.dialect)
        self.commits = GroupCommit(self._writer_connection, self._begin_batch, self._end_batch, self._writer_session)
        self._writer_driver: tuple[AsyncConnection, Any] | None = None
        self._loop_reader: sqlite3.Connection | None = None
        database = engine.url.database if self.is_sqlite else None
        in_memory = not database or database == ":memory:" or "mode=memory" in database
        self._reader_path = None if in_memory else database  # an in-memory database has one connection
        self._writer_lock: int | None = None  # SQLite: see _begin_sqlite_batch
        self.webhook_targets = WebhookTargets()  # read by every append (store/webhooks.py)

    def session(self, conn: AsyncConnection) -> StoreSession:
        return StoreSession(conn, self.statements)

    def _writer_session(self, conn: AsyncConnection) -> StoreSession:
        """A turn's session: on SQLite its hot statements run on the loop (``drivers.sqlite.run_steps``)."""
        # The driver connection is looked up once per batch, not per turn.
        driver = self._writer_driver[1] if self._writer_driver is not None and self._writer_driver[0] is conn else None
        return StoreSession(
            conn,
            self.statements,
            on_loop=self.is_sqlite,
            writer=True,
            driver=driver,
            webhook_targets=self.webhook_targets,
        )

    def on_commit(self, publish: Publisher) -> None:
        """Register where committed events go (the bus); called before the next batch may begin."""
        self.commits.publish = publish

    async def close(self) -> None:
        if self._loop_reader is not None:
            self._loop_reader.close()
            self._loop_reader = None
        await self.commits.close()
        await self.engine.dispose()
        if self._writer_lock is not None:
            os.close(self._writer_lock)
            self._writer_lock = None

    async def refresh_webhook_targets(self) -> None:
        """Reload which endpoints subscribe to which event types (after a change, here or on another node)."""
        async with self.read() as session:
            self.webhook_targets.replace(await session.webhooks())

    async def ping(self) -> None:
        async with self.read() as session:
            await session.conn.execute(text("SELECT 1"))

    async def head(self) -> int:
        """The newest event id (0 for an empty log): where a brand-new stream starts."""
        async with self.read() as session:
            return await session.head()

    async def hot_read(self, read: Callable[[StoreSession], Awaitable[T]]) -> T:
        """Run ``read`` (driver statements only: a stream's replay, a principal, a rep's presence).

        On SQLite it runs on the event loop, on a connection of its own: a stream open used to pay a
        pool checkout, three or four hops to aiosqlite's threads and a rollback on check-in, more than the
        reads themselves (bench/RESULTS.md). A read that would have to wait is run again through the pool.
        On PostgreSQL it is an ordinary :meth:`read`.
        """
        reader = self._reader()
        if reader is not None:
            try:
                return await read(StoreSession.on_loop_reader(reader, self.statements))
            except sqlite.ReaderBusy:
                pass
        async with self.read() as session:
            return await read(session)

    def _reader(self) -> sqlite3.Connection | None:
        if self._loop_reader is None and self._reader_path is not None:
            self._loop_reader = sqlite.open_loop_reader(self._reader_path)
        return self._loop_reader

    @asynccontextmanager
    async def read(self) -> AsyncIterator[StoreSession]:
        with translated():
            async with self.engine.connect() as conn:
                yield self.session(conn)

    @asynccontextmanager
    async def side_write(self) -> AsyncIterator[StoreSession]:
        """A transaction of its own, beside the single writer, for rows that carry no event (an
        attachment's bytes, the outbox's claims): a 10 MiB file must not hold every message's turn.

        It appends nothing (``append`` would break the id order that only the writer keeps). On SQLite
        its first statement should write, so that it waits for the write lock instead of failing.
        """
        with translated():
            async with self.engine.begin() as conn:
                session = self.session(conn)
                yield session
                if session.appended:
                    raise RuntimeError("side_write() sessions must not append events; use write()")

    def write(self) -> AbstractAsyncContextManager[StoreSession]:
        """A turn in a write transaction that may append events (see :mod:`helpline.store.commit`).

        The ``async with`` body runs the caller's checks and statements; leaving it waits until the
        batch holding them has committed and published, so code after it may answer 2xx.
        """
        return self.commits.turn()

    async def _writer_connection(self) -> AsyncConnection:
        if self._writer_lock is None and self._reader_path is not None:
            self._writer_lock = os.open(f"{self._reader_path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        return await self.engine.connect()

    async def _begin_batch(self, conn: AsyncConnection, first: bool) -> AsyncTransaction:
        """Begin a batch's transaction so that it has really started on the server.

        The hot statements go to the driver connection (store/connection.py), which would run outside any
        transaction if SQLAlchemy had not sent a statement yet. On SQLite the batch begins with the file
        lock and ``BEGIN IMMEDIATE`` (``_begin_sqlite_batch``); on PostgreSQL with the append lock, a
        session lock that outlives the transaction until ``_end_batch``.
        """
        # Looked up again for every batch: SQLAlchemy replaces the driver connection under the same
        # AsyncConnection when it invalidates one (a caller cancelled in the middle of a statement).
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        self._writer_driver = (conn, driver)
        if self.is_sqlite:
            # One hop to aiosqlite's thread (SQLAlchemy's own BEGIN took three: cursor, execute, close);
            # the ``begin`` listener then sees the transaction open and sends nothing.
            with translated():
                await sqlite.begin_batch(driver, self._writer_lock)
            return await conn.begin()
        # PostgreSQL: SQLAlchemy's asyncpg adapter begins lazily, at the first statement it runs itself;
        # the batch's driver statements need the transaction now (drivers/postgres.py). The lock goes
        # straight to asyncpg: through SQLAlchemy's executor each cost ~250 µs of CPU (bench/RESULTS.md).
        transaction = await conn.begin()
        with translated():
            await postgres.start_transaction(raw.dbapi_connection)
            if first:
                await postgres.take_append_lock(driver)
        return transaction

    async def _driver_of(self, conn: AsyncConnection) -> Any:
        if self._writer_driver is not None and self._writer_driver[0] is conn:
            return self._writer_driver[1]
        return (await conn.get_raw_connection()).driver_connection

    async def _end_batch(self, conn: AsyncConnection) -> bool:
        """Release the append lock on PostgreSQL; False when the connection is no longer usable."""
        if self.is_sqlite:
            sqlite.end_batch(self._writer_lock)
            return not (conn.closed or conn.invalidated)
        if conn.closed or conn.invalidated:
            return False
        try:  # outside any transaction, so nothing to commit; on the driver, as the lock was taken
            await postgres.release_append_lock(await self._driver_of(conn))
        except postgres.CONNECTION_LOST:  # the connection is broken; PostgreSQL drops its locks with it
            await conn.invalidate()
            return False
        return True


async def open_store(url: str, *, migrate: bool | None = None) -> Store:
    """Connect to ``url``; apply migrations (by default only for SQLite, the embedded default).

    PostgreSQL deployments run ``helpline db upgrade`` explicitly so that a rolling deploy never has
    two versions racing to migrate.
    """
    # Reads (authentication refreshes, replays, listings) run concurrently; connections beyond the pool
    # are opened and closed per use (on SQLite a thread each), so the pool is sized for a busy node.
    parsed = async_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:  # the adapter's private attributes are where it expects them, or a clear error now
        sqlite.check()
    else:
        postgres.check()
    # SQLite's writer runs its hot statements from the loop's thread (drivers/sqlite.py, run_steps).
    connect_args = {"check_same_thread": False} if is_sqlite else {}
    engine = create_async_engine(parsed, pool_pre_ping=False, pool_size=20, max_overflow=40, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", sqlite.on_connect)
        event.listen(engine.sync_engine, "begin", sqlite.on_begin)
    store = Store(url, engine)
    should_migrate = store.is_sqlite if migrate is None else migrate
    try:
        if should_migrate:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade)
        else:
            async with engine.connect() as conn:
                await conn.execute(select(func.count()).select_from(schema.queues))
        await store.refresh_webhook_targets()  # before any write: an event's deliveries are never missed
    except STARTUP_ERRORS as exc:
        await engine.dispose()
        raise ConfigurationError(
            f"cannot open database {redact(url)}: {type(exc).__name__}"
            + ("" if should_migrate else " (has 'helpline db upgrade' been run?)")
        ) from exc
    return store
