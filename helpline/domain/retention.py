"""Retention and erasure: conversations that outlived their deployment's limit, and one customer on request.

**Retention.** A deployment's ``retention_days`` (None: keep everything, the default) bounds how long a
conversation is kept after its last activity (``updated_at``). The background job (:meth:`Retention.run`,
every ``retention_interval_seconds``) removes expired conversations with their events, attachments,
deliveries and outbox rows, ``retention_batch_size`` conversations per write transaction: each batch is a
short turn of the writer, so messages keep flowing while a backlog is worked off.

**Erasure.** :meth:`Retention.erase_customer` (``helpline customers erase ID``, ``DELETE
/api/v1/admin/customers/{id}``) removes every conversation of one customer, in the same batches, then the
customer itself (name, email, external id), and writes an audit row (``erasures``) that says who was
erased, by whom and how much, never what was said.

Both move the log's resume horizon (store/purge.py): a client resuming from before removed events gets
``stream.reset``, never a silent gap. Both refuse to run on a database whose schema is behind the code's
migrations (they would miss tables a newer revision added).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from helpline.config import Settings
from helpline.domain.invalidation import Invalidation
from helpline.errors import NotFound, Unavailable
from helpline.records import isoformat, utcnow
from helpline.store import Store, purge
from helpline.store.attachments import Blobs, thumbnail_key
from helpline.store.migrate import pending

__all__ = ["Retention", "SchemaBehind"]

logger = logging.getLogger("helpline.retention")


class SchemaBehind(Unavailable):
    """The database lacks migrations this code has: removing data now could leave some behind."""


class Retention:
    def __init__(
        self, store: Store, blobs: Blobs, settings: Settings, invalidation: Invalidation | None = None
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.invalidation = invalidation or Invalidation(None)

    async def check_schema(self) -> None:
        async with self.store.engine.connect() as conn:
            missing = await conn.run_sync(pending)
        if missing:
            raise SchemaBehind(
                f"the database schema is behind (missing {', '.join(missing)}): run 'helpline db upgrade' first",
                retry_after=60,
            )

    # -- retention ------------------------------------------------------------------------------
    async def sweep(self) -> purge.Removed:
        """Remove every conversation past its deployment's retention, batch by batch."""
        await self.check_schema()
        total = purge.Removed()
        async with self.store.read() as s:
            deployments = [d for d in await s.deployments() if d.retention_days]
        for deployment in deployments:
            assert deployment.retention_days is not None
            cutoff = utcnow() - timedelta(days=deployment.retention_days)
            while True:
                removed = await self._batch(
                    lambda conn, d=deployment.id, c=cutoff: purge.expired_conversations(
                        conn, d, c, self.settings.retention_batch_size
                    )
                )
                total.add(removed)
                if removed.conversations < self.settings.retention_batch_size:
                    break
                await asyncio.sleep(0)  # let other work in between batches
        if total.conversations:
            logger.info(
                "retention removed %d conversations (%d events, %d attachments); resume horizon %d",
                total.conversations,
                total.events,
                len(total.attachment_ids),
                total.horizon,
            )
        return total

    async def run(self) -> None:
        """The background job: a sweep every ``retention_interval_seconds`` until cancelled."""
        while True:
            try:
                await self.sweep()
            except SchemaBehind as exc:
                logger.warning("retention skipped: %s", exc.detail)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed sweep is retried next time; the server goes on
                logger.exception("retention sweep failed")
            await asyncio.sleep(self.settings.retention_interval_seconds)

    # -- erasure --------------------------------------------------------------------------------
    async def erase_customer(self, customer_id: str, requested_by: str) -> dict[str, Any]:
        await self.check_schema()
        async with self.store.read() as s:
            customer = await s.customer(id=customer_id)
        if customer is None:
            raise NotFound("no such customer")
        total = purge.Removed()
        while True:
            removed = await self._batch(
                lambda conn: purge.customer_conversations(conn, customer_id, self.settings.retention_batch_size)
            )
            total.add(removed)
            if removed.conversations == 0:
                break
        async with self.store.write() as s:
            await purge.delete_customer(s.conn, customer_id)
            audit = await purge.record_erasure(s.conn, customer_id, customer.deployment_id, total, requested_by)
        # Committed: every node forgets the customer, whose token stops working and whose streams end.
        await self.invalidation.invalidate_principal(customer_id)
        logger.info("erased customer %s (%d conversations) for %s", customer_id, total.conversations, requested_by)
        return {**audit, "erased_at": isoformat(audit["erased_at"])}

    # -- one batch ------------------------------------------------------------------------------
    async def _batch(self, choose: Any) -> purge.Removed:
        async with self.store.write() as s:
            ids = await choose(s.conn)
            removed = await purge.delete_conversations(s.conn, ids)
        for attachment_id in removed.attachment_ids:  # committed: the rows are gone, now the files
            for key in (attachment_id, thumbnail_key(attachment_id)):
                with contextlib.suppress(OSError, ValueError):
                    await self.blobs.discard(key)
        return removed
