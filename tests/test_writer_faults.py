"""The group-commit writer survives whatever its connection raises (issue 13).

One test per way a connection fails, each on the real database: the backend terminated from outside
(between batches, in the middle of a turn, after the commit while the batch still holds the append
lock), the socket closed under the driver, and the lock call failing. Every time, the caller whose
batch was hit gets a 503 (or its committed 2xx), the broken connection is dropped, and the next write
goes through: the writer task never dies and nobody waits forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import text

from helpline.errors import Unavailable
from helpline.records import StoredEvent
from helpline.store import Store, open_store
from helpline.store.drivers.postgres import APPEND_LOCK_KEY
from tests.conftest import _asyncpg_dsn, empty_postgres
from tests.test_store_contract import seed_conversation

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[Store]:
    await empty_postgres(postgres_url)
    store = await open_store(postgres_url, migrate=True)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    store = await open_store(sqlite_url, migrate=True)
    try:
        yield store
    finally:
        await store.close()


async def append(store: Store, customer: str, n: int) -> int:
    async with store.write() as s:
        event = await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})
    assert event.id is not None
    return event.id


async def writer_driver(store: Store) -> Any:
    """The writer's driver connection, once the writer is idle (its last batch fully ended)."""
    if store.commits._writer is not None:
        await asyncio.wait_for(asyncio.shield(store.commits._writer), 10)
    conn = store.commits._conn
    assert conn is not None, "the writer holds a connection between batches"
    return (await conn.get_raw_connection()).driver_connection


async def terminate(postgres_url: str, pid: int) -> None:
    import asyncpg

    admin = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


async def stored_ids(store: Store, customer: str) -> list[int]:
    async with store.read() as s:
        return [e.id or 0 for e in await s.events_after(customer, 0, 100)]


async def the_writer_goes_on(store: Store, customer: str, acknowledged: list[int], broken: Any) -> None:
    """Later writes succeed on a fresh driver connection, and the log holds exactly what was acknowledged."""
    for n in range(3):
        acknowledged.append(await asyncio.wait_for(append(store, customer, 100 + n), 10))
    assert await writer_driver(store) is not broken
    writer = store.commits._writer
    assert writer is not None and (not writer.done() or writer.exception() is None)
    assert await stored_ids(store, customer) == acknowledged


async def test_postgres_backend_terminated_in_the_middle_of_a_turn(pg_store: Store, postgres_url: str) -> None:
    customer = await seed_conversation(pg_store)
    acknowledged = [await append(pg_store, customer, 0)]
    broken = await writer_driver(pg_store)
    with pytest.raises(Unavailable):
        async with pg_store.write() as s:
            pid = (await s.conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await terminate(postgres_url, pid)
            await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
    await the_writer_goes_on(pg_store, customer, acknowledged, broken)


async def test_postgres_backend_terminated_after_the_commit_before_the_unlock(
    pg_store: Store, postgres_url: str
) -> None:
    """The batch is committed (its caller gets its 2xx); the unlock then fails on the dead connection."""
    customer = await seed_conversation(pg_store)
    await append(pg_store, customer, 0)
    broken = await writer_driver(pg_store)
    pid = broken.get_server_pid()

    killed: list[int] = []

    async def kill_the_writer(events: Sequence[StoredEvent]) -> None:
        if not killed:
            killed.append(pid)
            await terminate(postgres_url, pid)

    pg_store.on_commit(kill_the_writer)
    acknowledged = await stored_ids(pg_store, customer)
    acknowledged.append(await append(pg_store, customer, 1))
    await the_writer_goes_on(pg_store, customer, acknowledged, broken)


async def test_postgres_socket_closed_between_batches(pg_store: Store) -> None:
    customer = await seed_conversation(pg_store)
    acknowledged = [await append(pg_store, customer, 0)]
    broken = await writer_driver(pg_store)
    broken._transport.abort()  # the socket is gone; asyncpg has not noticed yet
    outcomes = []
    try:
        acknowledged.append(await append(pg_store, customer, 1))
        outcomes.append("stored")
    except Unavailable:
        outcomes.append("retry")  # a 503 is allowed for the batch that found the socket closed
    await the_writer_goes_on(pg_store, customer, acknowledged, broken)
    assert outcomes in (["stored"], ["retry"])


async def test_postgres_socket_closed_in_the_middle_of_a_turn(pg_store: Store) -> None:
    customer = await seed_conversation(pg_store)
    acknowledged = [await append(pg_store, customer, 0)]
    broken = await writer_driver(pg_store)
    with pytest.raises(Unavailable):
        async with pg_store.write() as s:
            await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
            broken._transport.abort()
            await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
    await the_writer_goes_on(pg_store, customer, acknowledged, broken)


async def test_postgres_append_lock_call_failing(pg_store: Store, postgres_url: str) -> None:
    """Another session holds the append lock and the writer's lock call times out: that connection is
    dropped, and the write waits on a fresh one until the lock is free, then commits."""
    import asyncpg

    customer = await seed_conversation(pg_store)
    acknowledged = [await append(pg_store, customer, 0)]
    broken = await writer_driver(pg_store)
    await broken.execute("SET lock_timeout = '100ms'")  # this connection only
    holder = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        await holder.execute(f"SELECT pg_advisory_lock({APPEND_LOCK_KEY})")
        write = asyncio.create_task(append(pg_store, customer, 1))
        await asyncio.sleep(0.5)  # the lock call fails after 100 ms; the retry waits for the holder
        assert not write.done()
    finally:
        await holder.close()
    acknowledged.append(await asyncio.wait_for(write, 10))
    await the_writer_goes_on(pg_store, customer, acknowledged, broken)


async def test_postgres_writer_recovers_from_every_failure_in_a_row(pg_store: Store, postgres_url: str) -> None:
    """Queued writers behind a batch that dies are served by the same (living) writer task."""
    customer = await seed_conversation(pg_store)
    await append(pg_store, customer, 0)
    writer = pg_store.commits._writer
    pid = (await writer_driver(pg_store)).get_server_pid()
    await terminate(postgres_url, pid)
    results = await asyncio.gather(*(append(pg_store, customer, n) for n in range(20)), return_exceptions=True)
    assert all(isinstance(r, (int, Unavailable)) for r in results), results
    stored = [r for r in results if isinstance(r, int)]
    assert stored, "the writer reconnected and served the queued turns"
    assert writer is not None and (not writer.done() or writer.exception() is None)
    assert set(stored) <= set(await stored_ids(pg_store, customer))


async def test_sqlite_connection_closed_under_the_writer(sqlite_store: Store) -> None:
    """SQLite's equivalent of a terminated backend: the writer's connection is closed under it."""
    customer = await seed_conversation(sqlite_store)
    acknowledged = [await append(sqlite_store, customer, 0)]
    broken = await writer_driver(sqlite_store)
    broken._conn.close()
    try:
        acknowledged.append(await append(sqlite_store, customer, 1))
    except Unavailable:
        pass
    await the_writer_goes_on(sqlite_store, customer, acknowledged, broken)


async def test_sqlite_write_lock_call_failing(sqlite_store: Store, sqlite_url: str) -> None:
    """Another program holds SQLite's write lock past the busy timeout: ``BEGIN IMMEDIATE`` fails, that
    connection is dropped, and the write goes through on a fresh one once the lock is free."""
    customer = await seed_conversation(sqlite_store)
    acknowledged = [await append(sqlite_store, customer, 0)]
    broken = await writer_driver(sqlite_store)
    broken._conn.execute("PRAGMA busy_timeout=100")
    outsider = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        outsider.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(append(sqlite_store, customer, 1))
        await asyncio.sleep(0.5)
        assert not write.done()
    finally:
        outsider.rollback()
        outsider.close()
    acknowledged.append(await asyncio.wait_for(write, 10))
    await the_writer_goes_on(sqlite_store, customer, acknowledged, broken)


async def test_a_database_that_refuses_every_batch_answers_503_instead_of_spinning(
    sqlite_store: Store, sqlite_url: str
) -> None:
    """A fresh connection that cannot begin either: every waiting caller gets a 503, nobody hangs."""
    customer = await seed_conversation(sqlite_store)
    await append(sqlite_store, customer, 0)
    (await writer_driver(sqlite_store))._conn.execute("PRAGMA busy_timeout=100")
    outsider = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        outsider.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable):  # the fresh connection waits its 5 s busy timeout, then gives up
            await asyncio.wait_for(append(sqlite_store, customer, 1), 20)
    finally:
        outsider.rollback()
        outsider.close()
    await append(sqlite_store, customer, 2)
