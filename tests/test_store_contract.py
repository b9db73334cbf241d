"""One contract for every store backend (ids ``sqlite`` and ``postgres``): what the domain relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from helpline.domain.models import StoredEvent
from helpline.errors import Conflict
from helpline.store import Store, open_store

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

    from helpline.domain.models import utcnow

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
