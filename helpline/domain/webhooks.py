"""Webhook endpoints (admin): register, change, rotate the secret, read the delivery log, test, redeliver.

Each endpoint has a generated secret, shown once (at creation and at rotation); every delivery is signed
with it (:func:`signature`). What each endpoint subscribes to is cached by the store for the append path
(store/webhooks.py): a change here reloads it on this node at once and tells the other nodes over the bus.
Sending is the delivery worker's job (domain/webhook_delivery.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from helpline.bus import Bus, Envelope
from helpline.config import Settings
from helpline.domain import outbound
from helpline.errors import Conflict, HelplineError, NotFound, ValidationFailed
from helpline.events import EventType, envelope, stored_types
from helpline.records import Delivery, Webhook, isoformat, new_id, utcnow
from helpline.store import Store
from helpline.store.webhooks import WILDCARD

CONTROL_CHANNEL = "ctl:webhooks"  # no stream subscribes to it: nodes hear endpoint changes here
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret

# Stored events, the ones a webhook can carry (ephemeral ones, typing and queue.stats, are never stored).
DELIVERABLE_TYPES = stored_types()


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``Helpline-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (docs/protocol.md)."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def public(hook: Webhook, *, pending: int | None = None) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "paused": hook.paused,
        "consecutive_failures": hook.failures,
        "created_at": isoformat(hook.created_at),
        "updated_at": isoformat(hook.updated_at),
    }
    if pending is not None:
        shown["pending"] = pending
    return shown


def delivery_public(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "conversation_id": delivery.conversation_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "duration_ms": delivery.last_duration_ms,
        "created_at": isoformat(delivery.created_at),
        "next_attempt_at": isoformat(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "delivered_at": isoformat(delivery.delivered_at) if delivery.delivered_at else None,
    }


def _checked_events(events: list[str]) -> list[str]:
    wanted = sorted(set(events))
    if not wanted:
        raise ValidationFailed("name at least one event type (or '*' for every stored type)")
    unknown = [e for e in wanted if e != WILDCARD and e not in DELIVERABLE_TYPES]
    if unknown:
        raise ValidationFailed(
            f"not a stored event type: {', '.join(unknown)} (webhooks carry {', '.join(sorted(DELIVERABLE_TYPES))})"
        )
    return [WILDCARD] if WILDCARD in wanted else wanted


class Webhooks:
    def __init__(
        self, store: Store, bus: Bus, settings: Settings, *, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.on_change = on_change  # the worker's wake(): an endpoint was added, resumed or given work

    async def create(self, url: str, events: list[str], *, enabled: bool = True) -> dict[str, Any]:
        checked_url = outbound.checked_url(url, allow_private=self.settings.webhook_allow_private)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        async with self.store.write() as s:
            hook = await s.insert_webhook(
                id=new_id("whk"),
                url=checked_url,
                events=_checked_events(events),
                secret=secret,
                enabled=enabled,
                paused=False,
                failures=0,
                created_at=now,
                updated_at=now,
            )
        await self._changed()
        return {**public(hook, pending=0), "secret": secret}

    async def list(self) -> list[dict[str, Any]]:
        async with self.store.read() as s:
            return [public(h, pending=await s.pending_count(h.id)) for h in await s.webhooks()]

    async def get(self, webhook_id: str) -> dict[str, Any]:
        async with self.store.read() as s:
            hook = await _existing(s, webhook_id)
            return public(hook, pending=await s.pending_count(hook.id))

    async def update(self, webhook_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the URL, the events or ``enabled``; enabling (or ``paused: false``) resumes a paused one."""
        values: dict[str, Any] = {}
        if changes.get("url") is not None:
            values["url"] = outbound.checked_url(changes["url"], allow_private=self.settings.webhook_allow_private)
        if changes.get("events") is not None:
            values["events"] = _checked_events(changes["events"])
        resume = changes.get("enabled") is True or changes.get("paused") is False
        if changes.get("enabled") is not None:
            values["enabled"] = changes["enabled"]
        if changes.get("paused") is True:
            values["paused"] = True
        now = utcnow()
        async with self.store.write() as s:
            await _existing(s, webhook_id)
            if resume:
                values.update(paused=False, failures=0)
                await s.retry_now(webhook_id, now)
            await s.update_webhook(webhook_id, updated_at=now, **values)
            hook = await _existing(s, webhook_id)
            pending = await s.pending_count(webhook_id)
        await self._changed()
        return public(hook, pending=pending)

    async def rotate_secret(self, webhook_id: str) -> dict[str, Any]:
        """A new secret, shown once; deliveries are signed with it from the next attempt on."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        async with self.store.write() as s:
            await _existing(s, webhook_id)
            await s.update_webhook(webhook_id, secret=secret, updated_at=utcnow())
            hook = await _existing(s, webhook_id)
        return {**public(hook), "secret": secret}

    async def delete(self, webhook_id: str) -> None:
        async with self.store.write() as s:
            await _existing(s, webhook_id)
            await s.delete_webhook(webhook_id)
        await self._changed()

    async def deliveries(self, webhook_id: str, *, before: int | None, limit: int) -> dict[str, Any]:
        async with self.store.read() as s:
            await _existing(s, webhook_id)
            rows = await s.deliveries(webhook_id, before=before, limit=limit + 1)
        page = rows[:limit]
        return {
            "deliveries": [delivery_public(d) for d in page],
            "next_cursor": page[-1].id if len(rows) > limit and page else None,
        }

    async def send_test(self, webhook_id: str) -> dict[str, Any]:
        """Queue a ``webhook.test`` event for this endpoint (signed and logged like any delivery)."""
        now = utcnow()
        async with self.store.write() as s:
            hook = await _existing(s, webhook_id)
            if not hook.enabled or hook.paused:
                raise Conflict("the webhook is disabled or paused; enable it first")
            test_id = f"test_{secrets.token_hex(8)}"
            body = {"id": test_id, **envelope(EventType.WEBHOOK_TEST, None, {"webhook_id": hook.id}, at=now)}
            delivery_id = await s.insert_test_delivery(
                hook.id, json.dumps(body, separators=(",", ":"), ensure_ascii=False), now
            )
            delivery = await s.delivery(hook.id, delivery_id)
        assert delivery is not None
        self._wake()
        return {**delivery_public(delivery), "event_id": test_id}

    async def redeliver(self, webhook_id: str, delivery_id: int) -> dict[str, Any]:
        """Send a delivery again (its event, same id); receivers dedupe by ``Helpline-Event-Id``."""
        async with self.store.write() as s:
            await _existing(s, webhook_id)
            delivery = await s.delivery(webhook_id, delivery_id)
            if delivery is None:
                raise NotFound("no such delivery for this webhook")
            if delivery.status == "pending":
                raise Conflict("this delivery is still pending; it will be sent")
            if not (await s.deliveries_with_bodies([delivery.id]))[0].body:
                raise Conflict("the event of this delivery no longer exists (erased)")
            await s.requeue_delivery(delivery.id, utcnow())
            delivery = await s.delivery(webhook_id, delivery_id)
        assert delivery is not None
        self._wake()
        return delivery_public(delivery)

    async def _changed(self) -> None:
        """Reload the append path's subscriptions here; tell the other nodes (who also reload on a timer)."""
        await self.store.refresh_webhook_targets()
        try:
            await self.bus.publish([CONTROL_CHANNEL], Envelope(None, "webhooks.changed", "{}"))
        except HelplineError:  # the bus is away: the other nodes reload within seconds all the same
            pass
        self._wake()

    def _wake(self) -> None:
        self.on_change()


async def _existing(s: Any, webhook_id: str) -> Webhook:
    hook: Webhook | None = await s.webhook(webhook_id)
    if hook is None:
        raise NotFound("no such webhook")
    return hook
