"""One contract for every store backend (ids ``sqlite`` and ``postgres``): what the domain relies on."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from helpline.errors import Conflict, Unavailable
from helpline.records import StoredEvent
from helpline.store import Store, open_store
from tests.conftest import empty_postgres

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url, migrate=True)
    try:
        yield opened
    finally:
        await opened.close()


async def seed_conversation(store: Store, conversation_id: str = "conv-1") -> str:
    async with store.write() as s:
        queue = await s.insert_queue(f"q-{conversation_id}")
        deployment = await s.insert_deployment(
            key=f"d-{conversation_id}",
            queue_id=queue.id,
            allowed_origins=[],
            pre_chat_fields=[],
            business_hours=None,
            identity_key=None,
        )
        customer = await s.insert_customer(
            deployment_id=deployment.id, external_id=None, display_name="C", email=None, verified=False
        )
        await s.insert_conversation(
            id=conversation_id,
            customer_id=customer.id,
            deployment_id=deployment.id,
            queue_id=queue.id,
            status="queued",
            pre_chat={},
        )
    return customer.id


async def test_event_ids_are_strictly_increasing_and_payloads_carry_them(store: Store) -> None:
    customer = await seed_conversation(store)
    ids = []
    for n in range(5):
        async with store.write() as s:
            event = await s.append(
                "conversation.message", {"text": f"n{n}"}, conversation_id="conv-1", recipients={customer}
            )
        ids.append(event.id)
        assert event.data()["id"] == event.id and event.data()["text"] == f"n{n}"
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert await store.head() == ids[-1]


async def test_replay_reads_only_the_events_a_principal_is_recipient_of(store: Store) -> None:
    customer = await seed_conversation(store)
    async with store.write() as s:
        mine = await s.append("conversation.message", {"t": 1}, conversation_id="conv-1", recipients={customer, "rep"})
        await s.append("presence.changed", {"t": 2}, conversation_id=None, recipients={"someone-else"})
        theirs = await s.append("conversation.message", {"t": 3}, conversation_id="conv-1", recipients={customer})
    async with store.read() as s:
        assert [e.id for e in await s.events_after(customer, 0, 100)] == [mine.id, theirs.id]
        assert [e.id for e in await s.events_after("rep", 0, 100)] == [mine.id]
        assert len(await s.events_after(None, 0, 100)) == 3  # supervisors: everything
        assert [e.id for e in await s.events_after(customer, mine.id or 0, 100)] == [theirs.id]
        assert len(await s.events_after(None, 0, 2)) == 2  # replays are capped


async def test_a_failed_transaction_appends_nothing_and_publishes_nothing(store: Store) -> None:
    customer = await seed_conversation(store)
    published: list[StoredEvent] = []

    async def publish(events: Sequence[StoredEvent]) -> None:
        published.extend(events)

    store.on_commit(publish)
    head = await store.head()
    with pytest.raises(RuntimeError):
        async with store.write() as s:
            await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
            raise RuntimeError("the domain changed its mind")
    assert await store.head() == head and published == []
    async with store.write() as s:
        await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
    assert [e.id for e in published] == [await store.head()]


async def test_client_ids_are_unique_per_conversation(store: Store) -> None:
    customer = await seed_conversation(store)
    async with store.write() as s:
        first = await s.append(
            "conversation.message", {}, conversation_id="conv-1", recipients={customer}, client_id="m1"
        )
    async with store.read() as s:
        found = await s.event_by_client_id("conv-1", "m1")
        assert found is not None and found.id == first.id
        assert await s.event_by_client_id("conv-1", "m2") is None
    with pytest.raises(Conflict):  # a driver's IntegrityError never escapes raw
        async with store.write() as s:
            await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer}, client_id="m1")


async def test_stream_tickets_are_spent_once(store: Store) -> None:
    from datetime import timedelta

    from helpline.records import utcnow

    async with store.write() as s:
        assert await s.use_stream_ticket("jti-1", utcnow() + timedelta(seconds=60))
    async with store.write() as s:
        assert not await s.use_stream_ticket("jti-1", utcnow() + timedelta(seconds=60))


async def test_entries_page_forward_and_backward(store: Store) -> None:
    customer = await seed_conversation(store)
    async with store.write() as s:
        ids = [
            (await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})).id
            for n in range(7)
        ]
    async with store.read() as s:
        assert [e.id for e in await s.conversation_events("conv-1", after=ids[2], before=None, limit=3)] == ids[3:6]
        assert [e.id for e in await s.conversation_events("conv-1", after=None, before=ids[5], limit=2)] == ids[3:5]


async def test_writers_in_separate_store_instances_commit_and_publish_in_id_order(database_url: str) -> None:
    """Two stores on one database stand for two server processes: the append lock orders them."""
    first, second = await open_store(database_url, migrate=True), await open_store(database_url, migrate=True)
    try:
        customer = await seed_conversation(first)
        published: list[int] = []

        async def publish(events: Sequence[StoredEvent]) -> None:
            published.extend(e.id or 0 for e in events)
            await asyncio.sleep(0)  # give the other writer every chance to overtake

        first.on_commit(publish)
        second.on_commit(publish)

        async def write(store: Store, n: int) -> None:
            for _ in range(n):
                async with store.write() as s:
                    await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})

        await asyncio.gather(write(first, 25), write(second, 25))
        assert published == sorted(published) and len(published) == 50
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_database_is_a_clear_startup_error() -> None:
    from helpline.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="cannot open database") as caught:
        await open_store("postgresql://nobody:hunter2@127.0.0.1:1/none", migrate=False)
    assert "hunter2" not in str(caught.value)  # credentials are redacted


# -- group commit: concurrent writers share one commit, and each still stands or falls alone -------


async def test_concurrent_writers_share_commits_and_publish_every_event_once_in_id_order(store: Store) -> None:
    customer = await seed_conversation(store)
    published: list[int] = []

    async def publish(events: Sequence[StoredEvent]) -> None:
        published.extend(e.id or 0 for e in events)

    store.on_commit(publish)

    async def write(n: int) -> int:
        async with store.write() as s:
            event = await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})
            await asyncio.sleep(0)  # others queue behind this turn, as concurrent requests do
        return event.id or 0

    before = (store.commits.batches, store.commits.turns)
    ids = await asyncio.gather(*(write(n) for n in range(60)))
    batches, turns = store.commits.batches - before[0], store.commits.turns - before[1]
    assert turns == 60 and batches < 60  # some commits were shared
    assert published == sorted(ids) and len(set(ids)) == 60
    async with store.read() as s:
        assert len(await s.conversation_events("conv-1", after=None, before=None, limit=100)) == 60


async def test_a_failing_writer_in_a_shared_batch_undoes_only_its_own_statements(store: Store) -> None:
    customer = await seed_conversation(store)
    published: list[dict[str, object]] = []

    async def publish(events: Sequence[StoredEvent]) -> None:
        published.extend(e.data() for e in events)

    store.on_commit(publish)

    async def write(n: int) -> str:
        try:
            async with store.write() as s:
                await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})
                await asyncio.sleep(0)
                if n % 3 == 0:  # fails after it wrote: its event must vanish, its neighbours' must not
                    raise Conflict(f"writer {n} changed its mind")
        except Conflict:
            return "failed"
        return "stored"

    outcomes = await asyncio.gather(*(write(n) for n in range(30)))
    stored = {n for n, outcome in enumerate(outcomes) if outcome == "stored"}
    assert stored == {n for n in range(30) if n % 3}
    assert {e["n"] for e in published} == stored
    async with store.read() as s:
        rows = await s.conversation_events("conv-1", after=None, before=None, limit=100)
    assert {e.data()["n"] for e in rows} == stored


async def test_a_database_error_in_one_writer_is_a_conflict_for_it_alone(store: Store) -> None:
    """On PostgreSQL a failed statement poisons its transaction: only a savepoint keeps the batch alive."""
    customer = await seed_conversation(store)

    async def duplicate_queue() -> str:
        try:
            async with store.write() as s:
                await asyncio.sleep(0)
                await s.insert_queue("q-conv-1")  # the name is taken: a unique-key violation
        except Conflict:
            return "conflict"
        return "stored"

    async def message(n: int) -> str:
        async with store.write() as s:
            await asyncio.sleep(0)
            await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})
        return "stored"

    outcomes = await asyncio.gather(message(0), duplicate_queue(), message(1), duplicate_queue(), message(2))
    assert outcomes == ["stored", "conflict", "stored", "conflict", "stored"]
    async with store.read() as s:
        assert len(await s.conversation_events("conv-1", after=None, before=None, limit=10)) == 3


async def test_a_writer_cancelled_while_queued_or_in_its_turn_does_not_stall_the_others(store: Store) -> None:
    customer = await seed_conversation(store)
    in_turn = asyncio.Event()

    async def slow() -> None:
        async with store.write() as s:
            await s.append("conversation.message", {"n": "slow"}, conversation_id="conv-1", recipients={customer})
            in_turn.set()
            await asyncio.sleep(3600)

    async def quick(n: int) -> None:
        async with store.write() as s:
            await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})

    holder = asyncio.create_task(slow())
    await in_turn.wait()
    queued = asyncio.create_task(quick(-1))
    await asyncio.sleep(0.01)
    queued.cancel()  # cancelled while it waits for its turn
    holder.cancel()  # cancelled in the middle of its turn
    await asyncio.wait_for(asyncio.gather(*(quick(n) for n in range(3))), timeout=10)
    async with store.read() as s:
        rows = await s.conversation_events("conv-1", after=None, before=None, limit=10)
    assert sorted(e.data()["n"] for e in rows) == [0, 1, 2]  # neither cancelled writer left anything


async def test_leaving_the_write_block_means_committed(database_url: str, store: Store) -> None:
    customer = await seed_conversation(store)
    other = await open_store(database_url, migrate=False)  # another process's view of the database
    try:
        for n in range(5):
            async with store.write() as s:
                event = await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
            async with other.read() as s:
                assert await s.event_in_conversation("conv-1", event.id or 0), f"event {n} not visible after commit"
    finally:
        await other.close()


async def test_the_driver_statements_read_and_write_exactly_what_core_does(store: Store) -> None:
    """The per-message statements bypass SQLAlchemy's executor (store/log.py): same rows either way."""
    from sqlalchemy import select

    from helpline.records import Conversation, Customer, utcnow
    from helpline.store import schema

    customer = await seed_conversation(store)
    later = utcnow()
    async with store.write() as s:
        user = await s.insert_user(
            username="rep",
            display_name="Rep",
            password_hash="x",
            permissions=["chat_rep", "access_conversation_entries"],
            max_concurrent=2,
            disabled=False,
        )
        await s.update_conversation("conv-1", assignee_id=user.id, status="assigned", last_customer_at=later)
        event = await s.append(
            "conversation.message", {"t": "é"}, conversation_id="conv-1", recipients={customer, user.id}, client_id="m1"
        )
    async with store.read() as s:
        row = (await s.conn.execute(select(schema.conversations).where(schema.conversations.c.id == "conv-1"))).one()
        through_core = Conversation(**row._mapping)
        through_driver = await s.conversation("conv-1")
        assert through_driver == through_core
        assert through_driver.last_customer_at is not None
        assert (
            abs((through_driver.last_customer_at.replace(tzinfo=None) - later.replace(tzinfo=None)).total_seconds())
            < 1e-3
        )
        assert await s.user_permissions(user.id) == ("chat_rep", "access_conversation_entries")
        assert await s.user(id=user.id) == await s.user(username="rep")  # driver by id, Core by name
        core_customer = (await s.conn.execute(select(schema.customers).where(schema.customers.c.id == customer))).one()
        assert await s.customer(id=customer) == Customer(**core_customer._mapping)
        assert await s.log_bounds() == (event.id, event.id)
        assert await s.user_permissions("nobody") is None
        again = await s.event_by_client_id("conv-1", "m1")
        assert again is not None and again.data() == event.data()
        assert [e.id for e in await s.events_after(user.id, 0, 10)] == [event.id]
        stored_at = (
            await s.conn.execute(select(schema.events.c.created_at).where(schema.events.c.id == event.id))
        ).scalar_one()
        assert stored_at is not None  # written through the column's own bind processor, read back by Core


async def test_a_message_reads_its_context_in_one_statement_and_touches_its_conversation(store: Store) -> None:
    customer = await seed_conversation(store)
    async with store.write() as s:
        rep = await s.insert_user(
            username="rep",
            display_name="Rep",
            password_hash="x",
            permissions=["chat_rep"],  # without access_conversation_entries
            max_concurrent=2,
            disabled=False,
        )
        assert await s.message_context("conv-1", "m1", for_update=True) == (await s.conversation("conv-1"), None, None)
        await s.update_conversation("conv-1", assignee_id=rep.id)
        before = await s.conversation("conv-1")
        event = await s.append(
            "conversation.message",
            {"text": "hi"},
            conversation_id="conv-1",
            recipients={customer},
            client_id="m1",
            conversation_changes={"inactivity_warned_at": None, "status": "assigned"},
        )
    async with store.read() as s:
        conversation, previous, permissions = await s.message_context("conv-1", "m1", for_update=False)
        assert previous is not None and previous.data() == event.data()
        assert permissions == ("chat_rep",)
        assert conversation == await s.conversation("conv-1")
        assert conversation is not None and before is not None
        assert conversation.status == "assigned" and conversation.updated_at > before.updated_at
        assert await s.message_context("conv-unknown", "m1", for_update=False) == (None, None, None)


async def test_the_writer_replaces_a_connection_the_database_dropped(postgres_url: str) -> None:
    """The writer keeps one connection between batches; if the server kills it, the next batch reconnects.

    PostgreSQL only: it is the backend that can terminate one connection from outside.
    """
    from .conftest import empty_postgres

    await empty_postgres(postgres_url)
    store = await open_store(postgres_url, migrate=True)
    try:
        await _writes_survive_a_dropped_writer_connection(store)
    finally:
        await store.close()


async def _writes_survive_a_dropped_writer_connection(store: Store) -> None:
    from sqlalchemy import text

    from helpline.errors import Unavailable

    customer = await seed_conversation(store)
    async with store.write() as s:
        writer_pid = (await s.conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with store.read() as s:
        await s.conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": writer_pid})  # waits for it
    outcomes = []
    for n in range(3):
        try:
            async with store.write() as s:
                await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})
            outcomes.append("stored")
        except Unavailable:
            outcomes.append("retry")
    # The dead connection fails when the next batch begins, before any turn was handed a session: the
    # writer reconnects and the waiting writes go through without their callers seeing an error.
    assert outcomes == ["stored", "stored", "stored"]


async def test_a_writer_cancelled_while_its_batch_commits_does_not_stall_its_batch(store: Store) -> None:
    customer = await seed_conversation(store)
    publishing = asyncio.Event()

    async def slow_publish(events: Sequence[StoredEvent]) -> None:
        publishing.set()
        await asyncio.sleep(0.2)

    store.on_commit(slow_publish)

    async def write(n: int) -> None:
        async with store.write() as s:
            await s.append("conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer})
            await asyncio.sleep(0)

    first = asyncio.create_task(write(0))
    others = [asyncio.create_task(write(n)) for n in range(1, 4)]
    await publishing.wait()
    first.cancel()  # while it waits for its batch's commit and publish
    await asyncio.wait_for(asyncio.gather(*others), timeout=10)
    await asyncio.wait_for(asyncio.gather(write(9)), timeout=10)  # and the writer still serves new turns


async def test_sqlite_writer_runs_a_message_on_the_loop_and_commits_in_its_thread(sqlite_url: str) -> None:
    """A batch's BEGIN (with no one else holding the lock) and a message's statements cost no thread hop;
    the COMMIT (and its fsync) never runs on the loop."""
    store = await open_store(sqlite_url, migrate=True)
    try:
        customer = await seed_conversation(store)
        assert store._writer_driver is not None
        raw = store._writer_driver[1]._conn
        seen: list[tuple[bool, str]] = []
        loop_thread = threading.get_ident()
        raw.set_trace_callback(lambda sql: seen.append((threading.get_ident() == loop_thread, sql.split()[0])))
        async with store.write() as s:
            await s.message_context("conv-1", "m1", for_update=True)
            await s.append(
                "conversation.message",
                {"text": "hi"},
                conversation_id="conv-1",
                recipients={customer},
                conversation_changes={"status": "assigned"},
            )
        raw.set_trace_callback(None)
        on_loop = {verb for loop, verb in seen if loop}
        in_thread = {verb for loop, verb in seen if not loop}
        assert {"BEGIN", "SELECT", "INSERT", "UPDATE"} <= on_loop
        assert "COMMIT" in in_thread and "COMMIT" not in on_loop
        assert "BEGIN" not in in_thread
    finally:
        await store.close()


async def test_sqlite_writer_waits_for_another_process_lock_off_the_loop(sqlite_url: str, tmp_path: Path) -> None:
    """BEGIN IMMEDIATE is the one statement that waits for another writer (the CLI, say): when it would
    wait, it is sent from the thread, and the loop goes on."""
    store = await open_store(sqlite_url, migrate=True)
    other = sqlite3.connect(tmp_path / "helpline.db", isolation_level=None)
    try:
        await seed_conversation(store)
        other.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock, as another process would

        async def write() -> None:
            async with store.write() as s:
                await s.insert_queue("after-the-lock")

        writing = asyncio.create_task(write())
        started = time.monotonic()
        ticks = 0
        while time.monotonic() - started < 0.5:  # the loop keeps turning while the writer waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 20 and not writing.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        async with store.read() as s:
            assert "after-the-lock" in {q.name for q in await s.queues()}
    finally:
        other.close()
        await store.close()


async def test_sqlite_hot_reads_run_on_the_loop_and_see_every_commit(sqlite_url: str) -> None:
    """Stream opens read on the loop, on a connection of their own that sees each commit at once."""
    store = await open_store(sqlite_url, migrate=True)
    try:
        customer = await seed_conversation(store)
        assert await store.hot_read(lambda s: s.log_bounds()) == (0, 0)  # opens the loop reader
        reader = store._loop_reader
        assert reader is not None
        seen: list[bool] = []
        loop_thread = threading.get_ident()
        reader.set_trace_callback(lambda sql: seen.append(threading.get_ident() == loop_thread))
        for n in range(3):
            async with store.write() as s:
                event = await s.append(
                    "conversation.message", {"n": n}, conversation_id="conv-1", recipients={customer}
                )
            assert await store.hot_read(lambda s: s.log_bounds()) == (event.id, 1)
        events = await store.hot_read(lambda s: s.events_after(customer, 1, 10))
        assert [e.id for e in events] == [2, 3]
        reader.set_trace_callback(None)
        assert seen and all(seen)
    finally:
        await store.close()


async def test_a_sqlite_hot_read_that_would_wait_is_read_through_the_pool(sqlite_url: str) -> None:
    """SQLITE_BUSY on the loop reader (a WAL reset or recovery, too rare to provoke while the server's own
    connections hold the file open) sends the read to a pooled connection in a thread."""
    store = await open_store(sqlite_url, migrate=True)
    try:
        await seed_conversation(store)
        async with store.write() as s:
            await s.append("conversation.message", {}, conversation_id="conv-1", recipients=set())

        class BusyReader:
            def execute(self, *_args: object) -> None:
                busy = sqlite3.OperationalError("database is locked")
                busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
                raise busy

        store._loop_reader = BusyReader()  # type: ignore[assignment]
        assert await store.hot_read(lambda s: s.log_bounds()) == (1, 1)
        store._loop_reader = None
    finally:
        await store.close()


async def test_a_hot_read_session_refuses_core_queries(database_url: str) -> None:
    store = await open_store(database_url, migrate=True)
    try:
        if store.is_sqlite:
            with pytest.raises(TypeError, match="hot_read"):
                await store.hot_read(lambda s: s.queues())
        else:  # PostgreSQL: an ordinary read
            assert await store.hot_read(lambda s: s.queues()) == []
    finally:
        await store.close()


async def test_a_turn_cancelled_mid_statement_does_not_block_or_share_the_sqlite_writer(sqlite_url: str) -> None:
    """A caller cancelled while its statement runs in aiosqlite's thread: the next turn must neither run
    on the loop beside that statement (one connection, never two threads at once) nor wait forever for
    the write lock the abandoned statement's connection held."""
    from sqlalchemy import func, select

    store = await open_store(sqlite_url, migrate=True)
    try:
        customer = await seed_conversation(store)
        assert store._writer_driver is not None
        raw = store._writer_driver[1]._conn
        running = threading.Event()
        overlapped: list[str] = []

        def slow() -> int:
            running.set()
            time.sleep(0.3)
            running.clear()
            return 1

        raw.create_function("helpline_slow", 0, slow)
        loop_thread = threading.get_ident()
        raw.set_trace_callback(
            lambda sql: overlapped.append(sql) if running.is_set() and threading.get_ident() == loop_thread else None
        )

        async def cancelled_turn() -> None:
            async with store.write() as s:
                await s.conn.execute(select(func.helpline_slow()))

        async def next_turn() -> int:
            async with store.write() as s:
                event = await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
            return event.id

        first = asyncio.create_task(cancelled_turn())
        while not running.is_set():
            await asyncio.sleep(0.005)
        second = asyncio.create_task(next_turn())
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        del first  # a cancelled request's task is gone once it ends: nothing keeps its statement alive
        assert await asyncio.wait_for(second, 10) >= 1  # the abandoned statement held no lock for long
        assert overlapped == []
    finally:
        await store.close()


@pytest.mark.parametrize("through", ["driver", "sqlalchemy"])
async def test_a_turn_cancelled_mid_statement_does_not_block_the_postgres_writer(
    postgres_url: str, through: str
) -> None:
    from helpline.store.session import StoreSession

    await empty_postgres(postgres_url)
    store = await open_store(postgres_url, migrate=True)
    try:
        customer = await seed_conversation(store)
        started = asyncio.Event()

        async def sleep(s: StoreSession) -> None:
            started.set()
            if through == "driver":
                await s._fetch("SELECT pg_sleep(0.3)")
            else:
                await s.conn.execute(text("SELECT pg_sleep(0.3)"))

        async def cancelled_turn() -> None:
            async with store.write() as s:
                await sleep(s)

        async def next_turn() -> int:
            async with store.write() as s:
                event = await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
            return event.id

        first = asyncio.create_task(cancelled_turn())
        await started.wait()
        await asyncio.sleep(0.05)
        second = asyncio.create_task(next_turn())
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, 10) >= 1
        async with store.read() as s:
            assert await s.log_bounds() == (1, 1)  # the cancelled turn left nothing behind
    finally:
        await store.close()


async def test_events_the_bus_cannot_take_are_still_committed_and_the_writer_carries_on(store: Store) -> None:
    customer = await seed_conversation(store)

    async def unreachable(events: Sequence[StoredEvent]) -> None:
        raise Unavailable("the event bus is unavailable; retry shortly", retry_after=2)

    store.on_commit(unreachable)
    async with store.write() as s:
        first = await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
    writer_connection = store.commits._conn
    async with store.write() as s:
        second = await s.append("conversation.message", {}, conversation_id="conv-1", recipients={customer})
    assert store.commits._conn is writer_connection  # a bus failure is not a database failure
    async with store.read() as s:
        assert [e.id for e in await s.events_after(customer, 0, 10)] == [first.id, second.id]
