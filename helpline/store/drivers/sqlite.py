"""SQLite through aiosqlite: the one module that touches aiosqlite's private attributes.

aiosqlite runs every call in a thread of its own, one hop per call; a hop costs about as much CPU as
the statement (bench/RESULTS.md). So the hot statements run several to a hop through its private
``Connection._execute`` (call a function in its thread) on its private ``Connection._conn`` (the
``sqlite3.Connection`` it wraps), and SQLite's writer runs them on the event loop with no hop at all
(``run_steps`` with ``on_loop``, see :mod:`helpline.store.connection`). Both attributes have been there
since aiosqlite 0.17; ``check()`` refuses to start, naming the version, if an upgrade removes them, and
``pyproject.toml`` bounds the version to the ones checked.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite

from helpline.config import ConfigurationError

CONSTRAINT_VIOLATIONS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)
SUPPORTED = "aiosqlite>=0.20,<0.23"
PRIVATE_ATTRIBUTES = ("_execute", "_conn")
BUSY_TIMEOUT_MS = 5000  # how long a statement in aiosqlite's thread waits for another process's lock

Parameters = Sequence[Any] | Callable[[list[list[Any]]], Sequence[Any]]
Steps = Sequence[tuple[str, Parameters]]


def check() -> None:
    """Refuse to start on an aiosqlite without the private attributes this module uses."""
    missing = [name for name in PRIVATE_ATTRIBUTES if not hasattr(aiosqlite.Connection, name)]
    if missing:
        version = getattr(aiosqlite, "__version__", "unknown")
        raise ConfigurationError(
            f"aiosqlite {version} has no Connection.{', Connection.'.join(missing)}, which Helpline's SQLite "
            f"adapter uses (helpline/store/drivers/sqlite.py); install {SUPPORTED}"
        )


def sqlite_connection(driver: Any) -> sqlite3.Connection:
    """The ``sqlite3.Connection`` under an aiosqlite connection."""
    connection: sqlite3.Connection = driver._conn
    return connection


def in_transaction(driver: Any) -> bool:
    return sqlite_connection(driver).in_transaction


async def run_steps(driver: Any, steps: Steps, *, on_loop: bool) -> list[list[Any]]:
    """Every step in **one** hop to aiosqlite's thread, or with ``on_loop`` on the event loop.

    ``on_loop`` is for SQLite's writer connection only: its transaction already holds the write lock
    (``BEGIN IMMEDIATE``, the only statement that can wait for another process, is sent on the loop only
    when it needs no wait: ``begin_batch``), so these statements never wait on a lock; they touch pages
    that are in memory, and the ``COMMIT`` with its fsync still runs in the thread. Only the writer task
    uses that connection, one statement at a time, so the two threads never use it at once (it is
    opened with ``check_same_thread=False``).
    """
    if on_loop:
        return execute_steps(sqlite_connection(driver), steps)
    done: list[list[Any]] = await driver._execute(partial(execute_steps, sqlite_connection(driver), steps))
    return done


async def begin_batch(driver: Any, writer_lock: int | None) -> None:
    """The writer's ``BEGIN IMMEDIATE`` (after the writers' file lock).

    On the event loop when neither lock is held by anyone else, which is nearly always: only then does
    it cost no wait, and a hop to aiosqlite's thread costs as much CPU as the statement (at 200 msg/s a
    batch is one message, so every message paid it). When another process holds either lock (another
    worker's batch, the CLI writing), the loop must not wait: the same BEGIN goes to aiosqlite's thread,
    which waits there as before.
    """
    connection = sqlite_connection(driver)
    if not _begin_without_waiting(connection, writer_lock):
        await driver._execute(partial(_begin_immediate, connection, writer_lock))


def _begin_without_waiting(connection: sqlite3.Connection, writer_lock: int | None) -> bool:
    """Take both locks if that needs no wait; False (holding neither) when someone else has one."""
    if writer_lock is not None:
        try:
            fcntl.flock(writer_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    begun = False
    try:
        (waits_ms,) = connection.execute("PRAGMA busy_timeout").fetchone()
        connection.execute("PRAGMA busy_timeout=0")  # SQLITE_BUSY at once instead of sleeping on the loop
        try:
            connection.execute("BEGIN IMMEDIATE")
            begun = True
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(waits_ms)}")  # for the thread, if it must wait
        return True
    finally:
        if not begun and writer_lock is not None:
            fcntl.flock(writer_lock, fcntl.LOCK_UN)


def _begin_immediate(connection: sqlite3.Connection, writer_lock: int | None) -> None:
    """In aiosqlite's thread: take the writers' file lock, then SQLite's write lock.

    SQLite orders commits across processes, but a batch is published after its COMMIT, so two server
    processes on one file (``helpline serve --workers``) could publish ids out of order; a stream would
    then skip the smaller one. The file lock (``flock``, released by ``end_batch`` once the batch is
    published) is what PostgreSQL's advisory lock is there. It also queues writers in the kernel
    instead of SQLite's sleep-and-retry busy handler.
    """
    if writer_lock is not None:
        fcntl.flock(writer_lock, fcntl.LOCK_EX)
    try:
        connection.execute("BEGIN IMMEDIATE")
    except BaseException:
        if writer_lock is not None:
            fcntl.flock(writer_lock, fcntl.LOCK_UN)
        raise


def end_batch(writer_lock: int | None) -> None:
    if writer_lock is not None:
        fcntl.flock(writer_lock, fcntl.LOCK_UN)


class ReaderBusy(Exception):
    """The loop's SQLite reader would have to wait (it never does): read through the pool instead."""


def open_loop_reader(path: str) -> sqlite3.Connection:
    """A read-only connection used on the event loop (``Store.hot_read``): each SELECT its own snapshot."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("PRAGMA busy_timeout=0")  # never wait on the loop (see read_on_loop)
    reader.execute("PRAGMA query_only=1")
    return reader


def read_on_loop(connection: sqlite3.Connection, steps: Steps) -> list[list[Any]]:
    """Statements on SQLite's loop reader (``Store.hot_read``): each is its own snapshot, no hop.

    The reader has ``busy_timeout=0``: in WAL mode a read waits for nobody, except in the rare moments
    SQLite resets the log or recovers it, and then :class:`ReaderBusy` sends the read to a thread
    rather than stall every stream on the loop.
    """
    try:
        return execute_steps(connection, steps)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise ReaderBusy from exc
        raise


def execute_steps(connection: sqlite3.Connection, steps: Steps) -> list[list[Any]]:
    """Run statements in order and return each one's rows; a step's parameters may be a function of
    the rows before it (an insert's new id, say)."""
    results: list[list[Any]] = []
    for sql, parameters in steps:
        values = parameters(results) if callable(parameters) else parameters
        results.append(connection.execute(sql, tuple(values)).fetchall())
    return results


def on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Every new connection: WAL lets streams read while a message is written; ``synchronous=FULL``
    because a 2xx means the message survives a power cut (docs/protocol.md "Conversations"); ``busy_timeout``
    covers the CLI writing while the server runs."""
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see on_begin
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def on_begin(conn: Any) -> None:
    """SQLAlchemy's ``begin``: pysqlite would otherwise run SELECTs outside any transaction, so a read's
    statements would not share one snapshot. The writer takes SQLite's write lock up front itself
    (``begin_batch``), and then nothing is sent."""
    if in_transaction(conn.connection.driver_connection):
        return  # the writer's BEGIN IMMEDIATE is already sent
    conn.exec_driver_sql("BEGIN")
