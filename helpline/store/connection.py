"""A session's connection: SQLAlchemy Core statements on it, hot statements on the driver beneath it.

Every session (``Store.read()``, a turn of ``Store.write()``, ``Store.hot_read``) is one of these under
the queries of ``log.py`` (driver statements), ``directory.py`` and ``routing.py`` (SQLAlchemy Core).
Driver statements run in the same transaction as Core ones, through the adapters of ``store/drivers/``;
their errors are translated like Core's (``store/failures.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from typing import Any, Self, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.records import StoredEvent
from helpline.store.drivers import postgres, sqlite
from helpline.store.failures import translated
from helpline.store.statements import DriverStatements, Parameters
from helpline.store.webhooks import WebhookTargets

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


class SessionConnection:
    def __init__(
        self,
        conn: AsyncConnection,
        statements: DriverStatements,
        *,
        on_loop: bool = False,
        writer: bool = False,
        driver: Any = None,
        loop_reader: sqlite3.Connection | None = None,
        webhook_targets: WebhookTargets | None = None,
    ) -> None:
        # The writer's sessions (store/commit.py) never abandon a SQLAlchemy statement half-way (see
        # finish_even_if_cancelled). Driver statements need no such care: SQLite's writer runs them on
        # the loop, where nothing interrupts them; asyncpg cancels a statement on the server and keeps
        # the connection.
        self.conn = cast(AsyncConnection, _WriterConnection(conn)) if writer else conn
        self.statements = statements
        self.is_sqlite = statements.is_sqlite
        self.on_loop = on_loop  # SQLite's writer: hot statements run on the event loop (drivers/sqlite.py)
        self.appended: list[StoredEvent] = []
        self.webhook_targets = webhook_targets  # which endpoints an appended event is queued for
        self.queued_deliveries = 0  # deliveries this session queued (the worker is woken after commit)
        self._driver_connection: Any = driver  # the writer's is looked up once per batch (Store._begin_batch)
        self._loop_reader = loop_reader

    @classmethod
    def on_loop_reader(cls, connection: sqlite3.Connection, statements: DriverStatements) -> Self:
        """A session of driver statements only, on SQLite's loop reader (``Store.hot_read``)."""
        return cls(cast(AsyncConnection, _DriverStatementsOnly()), statements, loop_reader=connection)

    async def _fetch(self, sql: str, *parameters: Any) -> list[Any]:
        """A hot statement on the driver connection, in this session's transaction."""
        return (await self._fetch_steps([(sql, parameters)]))[0]

    async def _fetch_steps(self, steps: list[tuple[str, Parameters]]) -> list[list[Any]]:
        """Statements in order, each one's rows: one hop to aiosqlite's thread (none on SQLite's writer,
        whose statements run on the loop, or on the loop reader), one call each on asyncpg."""
        with translated():
            if self._loop_reader is not None:
                return sqlite.read_on_loop(self._loop_reader, steps)
            driver = await self._driver()
            if self.is_sqlite:
                return await sqlite.run_steps(driver, steps, on_loop=self.on_loop)
            return await postgres.run_steps(driver, steps)

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
            with translated():
                await postgres.run_script(await self._driver(), statements)
