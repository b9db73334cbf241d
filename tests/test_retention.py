"""Retention and erasure (issue 15), on SQLite and PostgreSQL.

Retention removes a deployment's conversations idle past its ``retention_days`` (events, fan-out rows,
offers, attachments and their files, deliveries, outbox rows) in bounded batches while writers go on, and
moves the resume horizon so that an older id gets ``stream.reset``. Erasure removes one customer's
conversations and personal data and leaves an audit entry without content. Both refuse to run on a
database whose migrations are behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from helpline import cli, create_app
from helpline.domain.retention import SchemaBehind
from helpline.records import utcnow
from helpline.store import schema
from tests.conftest import SECRET, make_settings
from tests.files import png
from tests.world import World

pytestmark = pytest.mark.timeout(120)
SECRET_TEXT = "my card number is 4111 1111 1111 1111"


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url,
        router_enabled=False,
        webhooks_enabled=False,
        retention_interval_seconds=0,  # the tests run the sweep themselves
        retention_batch_size=2,
        rate_limit_per_minute=100_000,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def count(app: FastAPI, table: Any, *where: Any) -> int:
    async with app.state.services.store.read() as s:
        return int((await s.conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def age(app: FastAPI, conversation_id: str, days: int) -> None:
    """Make a conversation look idle for ``days`` (its last activity moved back)."""
    async with app.state.services.store.write() as s:
        c = schema.conversations
        await s.conn.execute(
            update(c).where(c.c.id == conversation_id).values(updated_at=utcnow() - timedelta(days=days))
        )


async def say(world: World, who: str, conversation_id: str, text: str, message_id: str) -> None:
    sent = await world.send(who, conversation_id, text, message_id)
    assert sent.status_code in (200, 201), sent.text


async def test_retention_removes_expired_conversations_in_batches_and_moves_the_horizon(
    app: FastAPI, world: World
) -> None:
    alice = world.conversations["alice"]
    bob = world.conversations["bob"]
    await say(world, "alice", alice, SECRET_TEXT, "a1")
    await say(world, "rep", alice, "thanks, noted", "a2")
    uploaded = await world.client.post(
        f"/api/v1/conversations/{alice}/attachments",
        files={"file": ("photo.png", png(), "image/png")},
        headers=world.auth("alice"),
    )
    assert uploaded.status_code == 201, uploaded.text
    await say(world, "bob", bob, "still here", "b1")
    # Four more expired conversations of another customer: with batches of 2, three batches in all.
    await world.customer("carol")
    expired = [alice]
    for n in range(4):
        conversation = await world.open_conversation("carol", id=f"conv-carol-{n}")
        await say(world, "carol", conversation, f"old {n}", f"c{n}")
        expired.append(conversation)
    old_entries = (await world.call("supervisor", "GET", f"/api/v1/conversations/{alice}/entries")).json()["entries"]
    old_ids = [e["id"] for e in old_entries]
    for conversation in expired:
        await age(app, conversation, 40)
    await age(app, bob, 10)

    patched = await world.call(
        "admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"retention_days": 30}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["retention_days"] == 30
    bad = await world.call("admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"retention_days": 0})
    assert bad.status_code == 422

    blobs = app.state.services.attachments.blobs
    if blobs.kind == "disk":  # the image and its thumbnail
        assert sorted(p.name for p in blobs.folder.glob("att_*")) == sorted(
            [uploaded.json()["id"], f"{uploaded.json()['id']}_thumb"]
        )

    # Writers keep writing while the sweep runs.
    retention = app.state.services.retention
    writes = [say(world, "bob", bob, f"during {n}", f"during-{n}") for n in range(10)]
    removed, *_ = await asyncio.gather(retention.sweep(), *writes)
    assert removed.conversations == len(expired)
    assert len(removed.attachment_ids) == 1

    for conversation in expired:
        gone = await world.call("supervisor", "GET", f"/api/v1/conversations/{conversation}")
        assert gone.status_code == 404
    e = schema.events
    assert await count(app, e, e.c.conversation_id.in_(expired)) == 0
    assert await count(app, e, e.c.payload.contains("4111 1111")) == 0
    assert await count(app, schema.event_recipients, schema.event_recipients.c.event_id.in_(old_ids)) == 0
    assert await count(app, schema.participants, schema.participants.c.conversation_id.in_(expired)) == 0
    assert await count(app, schema.attachments) == 0
    if blobs.kind == "disk":
        assert not any(blobs.folder.glob("att_*"))
    kept = await world.call("bob", "GET", f"/api/v1/conversations/{bob}/entries")
    assert kept.status_code == 200
    texts = [x["text"] for x in kept.json()["entries"] if x["type"] == "conversation.message"]
    assert texts[0] == "still here" and sorted(texts[1:]) == sorted(f"during {n}" for n in range(10))

    # A resume from before the horizon is a reset; from after it, the stream carries on.
    before = await world.call("supervisor", "GET", "/api/v1/events/poll", params={"after": old_ids[0], "timeout": 0})
    assert [x["type"] for x in before.json()["events"]] == ["stream.reset"]
    assert before.json()["events"][0]["reason"] == "expired"
    head = int(before.json()["last_event_id"])
    assert head >= removed.horizon
    after = await world.call("supervisor", "GET", "/api/v1/events/poll", params={"after": head, "timeout": 0})
    assert after.json()["events"] == []

    # Nothing is due any more; a deployment without a limit keeps everything.
    assert (await retention.sweep()).conversations == 0
    patched = await world.call(
        "admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"retention_days": None}
    )
    assert patched.json()["retention_days"] is None
    await age(app, bob, 400)
    assert (await retention.sweep()).conversations == 0


async def test_erasure_removes_a_customer_and_leaves_an_audit_entry_without_content(
    app: FastAPI, world: World, database_url: str
) -> None:
    alice = world.conversations["alice"]
    await say(world, "alice", alice, SECRET_TEXT, "a1")
    second = await world.open_conversation("alice", id="conv-alice-2", pre_chat={})
    await say(world, "alice", second, "and my address is 1 Main St", "a2")
    await say(world, "bob", world.conversations["bob"], "bob stays", "b1")
    alice_id = world.customer_ids["alice"]

    refused = await world.call("rep", "DELETE", f"/api/v1/admin/customers/{alice_id}")
    assert refused.status_code == 403
    unknown = await world.call("admin", "DELETE", "/api/v1/admin/customers/cus_nobody")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")

    erased = await world.call("admin", "DELETE", f"/api/v1/admin/customers/{alice_id}")
    assert erased.status_code == 200, erased.text
    audit = erased.json()
    assert audit["customer_id"] == alice_id and audit["conversations"] == 2 and audit["events"] >= 4
    assert audit["requested_by"] == f"user:{world.user_ids['admin']}"
    assert SECRET_TEXT not in erased.text

    me = await world.call("alice", "GET", "/api/v1/conversations")
    assert me.status_code == 401  # the customer no longer exists
    for conversation in (alice, second):
        assert (await world.call("supervisor", "GET", f"/api/v1/conversations/{conversation}")).status_code == 404
    e = schema.events
    assert await count(app, e, e.c.payload.contains("4111 1111")) == 0
    assert await count(app, e, e.c.payload.contains("1 Main St")) == 0
    assert await count(app, e, e.c.payload.contains(alice_id)) == 0
    assert await count(app, schema.customers, schema.customers.c.id == alice_id) == 0
    async with app.state.services.store.read() as s:
        rows = [dict(r._mapping) for r in await s.conn.execute(select(schema.erasures))]
    assert len(rows) == 1 and rows[0]["customer_id"] == alice_id
    assert not any(SECRET_TEXT in str(v) for v in rows[0].values())
    bob_entries = await world.call("bob", "GET", f"/api/v1/conversations/{world.conversations['bob']}/entries")
    assert bob_entries.status_code == 200 and bob_entries.json()["entries"]

    # The command line erases the same way (and says so).
    done = await asyncio.to_thread(
        CliRunner().invoke,
        cli.app,
        ["customers", "erase", world.customer_ids["bob"]],
        env={"HELPLINE_DATABASE_URL": database_url, "HELPLINE_SECRET_KEY": SECRET, "HELPLINE_BUS_URL": "memory://"},
    )
    assert done.exit_code == 0, done.output
    assert "erased customer" in done.stdout and "1 conversations" in done.stdout
    assert await count(app, schema.erasures) == 2
    assert await count(app, schema.conversations) == 0


async def test_both_refuse_a_database_whose_migrations_are_behind(
    app: FastAPI, world: World, database_url: str
) -> None:
    store = app.state.services.store
    retention = app.state.services.retention
    async with store.engine.begin() as conn:
        current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await conn.execute(text("UPDATE alembic_version SET version_num = '0005_customer_side'"))
    try:
        with pytest.raises(SchemaBehind, match="helpline db upgrade"):
            await retention.sweep()
        answer = await world.call("admin", "DELETE", f"/api/v1/admin/customers/{world.customer_ids['alice']}")
        assert answer.status_code == 503 and "helpline db upgrade" in answer.json()["detail"]
        done = await asyncio.to_thread(
            CliRunner().invoke,
            cli.app,
            ["customers", "erase", world.customer_ids["alice"]],
            env={"HELPLINE_DATABASE_URL": database_url, "HELPLINE_SECRET_KEY": SECRET, "HELPLINE_BUS_URL": "memory://"},
        )
        assert done.exit_code == 2 and "helpline db upgrade" in done.stderr
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})
    assert await count(app, schema.customers, schema.customers.c.id == world.customer_ids["alice"]) == 1


def test_the_migrations_form_one_line_so_upgrade_head_is_unambiguous() -> None:
    """Two issues adding a migration on the same parent leave two heads, and every upgrade then fails."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from helpline.store.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1
