"""A session: every question the domain asks, on one open connection.

A :class:`StoreSession` comes from ``Store.read()``, a turn of ``Store.write()`` or ``Store.hot_read``;
only a write turn may ``append`` events, and what it appends is published by the store after commit.
Its queries live by concern: the event log and the per-request reads by key on the driver (``log.py``);
in SQLAlchemy Core the directory (``directory.py``), routing (``routing.py``), webhooks, API keys, bots,
attachments, the email outbox and ratings (a module each).
"""

from __future__ import annotations

from helpline.records import Customer, User
from helpline.store.api_keys import ApiKeyQueries
from helpline.store.attachments import AttachmentQueries
from helpline.store.bots import BotQueries
from helpline.store.canned import CannedQueries
from helpline.store.directory import Directory
from helpline.store.log import EventLog
from helpline.store.outbox import OutboxQueries
from helpline.store.ratings import RatingQueries
from helpline.store.routing import RoutingQueries
from helpline.store.webhooks import WebhookQueries


class StoreSession(
    EventLog,
    Directory,
    RoutingQueries,
    WebhookQueries,
    ApiKeyQueries,
    BotQueries,
    AttachmentQueries,
    OutboxQueries,
    RatingQueries,
    CannedQueries,
):
    async def user(self, *, id: str | None = None, username: str | None = None) -> User | None:
        return await self.user_by_id(id) if id is not None else await self.user_by_username(username)

    async def customer(
        self, *, id: str | None = None, deployment_id: str | None = None, external_id: str | None = None
    ) -> Customer | None:
        if id is not None:
            return await self.customer_by_id(id)
        return await self.customer_by_external_id(deployment_id, external_id)
