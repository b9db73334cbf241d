"""The webhook delivery worker: drains the outbox, at least once, in order per conversation.

Every node runs one. Each pass (woken by a commit that queued deliveries, by an admin's change, or every
``webhook_poll_seconds``) it claims due deliveries for each active endpoint, up to
``webhook_concurrency`` in flight per endpoint on this node, and sends each in a task of its own:

* a 2xx marks it delivered; anything else (an error status, a timeout after ``webhook_timeout_seconds``,
  a refused connection) schedules another attempt after an exponential backoff with jitter
  (``webhook_backoff_seconds`` · 2^(attempts-1), capped by ``webhook_backoff_max_seconds``, times a
  random factor in [0.5, 1]) — or after the receiver's ``Retry-After`` on 429 and 503 — until
  ``webhook_retry_hours`` after the event, when the delivery is given up (status ``failed``: it stays in
  the log and can be redelivered);
* ``webhook_pause_after_failures`` failed attempts in a row pause the endpoint: nothing more is sent to
  it (its deliveries keep being queued) until an admin enables it again; the console shows a banner and
  ``helpline_webhook_endpoints_paused`` counts it;
* a claim is a lease (``webhook_lease_seconds``): if this node dies mid-delivery, another node (or this
  one, restarted) takes the delivery over when the lease runs out. The receiver may then see an event
  twice, which is why it dedupes by ``Helpline-Event-Id``; it never sees one zero times.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpcore

from helpline.bus import Bus
from helpline.bus.base import SlowConsumer
from helpline.config import Settings
from helpline.domain.outbound import Refused, Sender
from helpline.domain.webhooks import CONTROL_CHANNEL, signature
from helpline.errors import HelplineError
from helpline.metrics import Metrics
from helpline.records import Delivery, StoredEvent, Webhook, new_id, utcnow
from helpline.store import Store
from helpline.store.commit import Publisher

logger = logging.getLogger("helpline.webhooks")

RELOAD_SECONDS = 5.0  # the subscriptions are reloaded this often even without a bus message
LOG_RETENTION = timedelta(days=7)  # finished deliveries stay in the log this long
PRUNE_EVERY_SECONDS = 600.0
MAX_ERROR_CHARS = 500


def waking(publish: Publisher, store: Store, wake: Any) -> Publisher:
    """The store's on-commit hook, also waking the worker when a committed event queued deliveries."""

    async def publish_and_wake(events: Sequence[StoredEvent]) -> None:
        try:
            await publish(events)
        finally:
            targets = store.webhook_targets
            if not targets.empty and any(targets.for_type(e.type) for e in events):
                wake()

    return publish_and_wake


def backoff_seconds(settings: Settings, attempts: int, retry_after: str | None, status: int | None) -> float:
    """How long to wait before attempt ``attempts + 1``."""
    if status in (429, 503) and retry_after:
        honoured = parse_retry_after(retry_after)
        if honoured is not None:
            return honoured
    exponential = settings.webhook_backoff_seconds * float(2 ** max(0, attempts - 1))
    return min(settings.webhook_backoff_max_seconds, exponential) * random.uniform(0.5, 1.0)  # noqa: S311


def parse_retry_after(value: str) -> float | None:
    """``Retry-After``: seconds, or an HTTP date (RFC 9110 §10.2.3)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - utcnow()).total_seconds())


class DeliveryWorker:
    def __init__(self, store: Store, bus: Bus, settings: Settings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        self.node = new_id("node")  # this process's name on the claims it holds
        self._wake = asyncio.Event()
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._sender = Sender(allow_private=settings.webhook_allow_private)
        self._last_prune = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="helpline-webhooks-listener")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.webhook_poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.pump()
                except Exception:  # the database restarting must not stop deliveries for good
                    logger.exception("webhook delivery pass failed")
                    await asyncio.sleep(1)
        finally:
            listener.cancel()
            tasks = [t for running in self._in_flight.values() for t in running]
            for task in tasks:
                task.cancel()
            await asyncio.gather(listener, *tasks, return_exceptions=True)
            await self._sender.close()

    async def pump(self) -> None:
        """One pass: claim what is due for every active endpoint that has room, and start sending it."""
        if self.store.webhook_targets.empty:
            if self.metrics is not None:
                self.metrics.webhook_endpoints_paused.set(0)  # a paused endpoint counts only while enabled
            return  # no endpoint enabled: nothing to claim, no statement
        now = utcnow()
        async with self.store.read() as s:
            hooks = await s.webhooks()
            if self.metrics is not None:
                self.metrics.webhook_endpoints_paused.set(sum(1 for h in hooks if h.paused and h.enabled))
            active = [h for h in hooks if h.enabled and not h.paused and self._room(h.id) > 0]
            if not active or not await s.any_due([h.id for h in active], now):
                await self._prune_now_and_then(now)
                return
        # The lease outlasts the longest a request may take, so a live node's claim never runs out mid-request.
        lease = max(self.settings.webhook_lease_seconds, self.settings.webhook_timeout_seconds * 1.5 + 1)
        claimed: list[tuple[Webhook, Delivery]] = []
        async with self.store.write() as s:
            for hook in active:
                for delivery in await s.claim_deliveries(
                    hook.id, now, self._room(hook.id), self.node, now + timedelta(seconds=lease)
                ):
                    claimed.append((hook, delivery))
        for hook, delivery in claimed:
            task = asyncio.create_task(self._deliver(hook, delivery), name=f"helpline-webhook-{delivery.id}")
            running = self._in_flight.setdefault(hook.id, set())
            running.add(task)
            task.add_done_callback(functools.partial(self._finished, hook.id))

    def _room(self, webhook_id: str) -> int:
        return self.settings.webhook_concurrency - len(self._in_flight.get(webhook_id, ()))

    def _finished(self, webhook_id: str, task: asyncio.Task[None]) -> None:
        running = self._in_flight.get(webhook_id)
        if running is not None:
            running.discard(task)
            if not running:
                del self._in_flight[webhook_id]
        self._wake.set()  # room again, and perhaps the conversation's next event is due now

    async def _deliver(self, hook: Webhook, delivery: Delivery) -> None:
        started = time.monotonic()
        status: int | None = None
        retry_after: str | None = None
        error: str | None = None
        if delivery.body is None:
            error = "the event no longer exists (erased)"
        else:
            body = delivery.body.encode()
            event_id = str(delivery.event_id) if delivery.event_id is not None else str(json.loads(body)["id"])
            headers = {
                "Helpline-Event-Id": event_id,
                "Helpline-Event-Type": delivery.event_type,
                "Helpline-Delivery-Id": str(delivery.id),
                "Helpline-Signature": signature(hook.secret, body),
            }
            try:
                answer = await self._sender.post(hook.url, body, headers, self.settings.webhook_timeout_seconds)
                status, retry_after = answer.status, answer.retry_after
                if not 200 <= status < 300:
                    error = f"answered {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
            except Refused as exc:
                error = f"refused: {exc}"
            except TimeoutError:
                error = f"no answer within {self.settings.webhook_timeout_seconds:g} s"
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpcore.UnsupportedProtocol as exc:
                error = f"unsupported URL: {exc}"
        duration_ms = round((time.monotonic() - started) * 1000)
        try:
            await self._record(hook, delivery, status, retry_after, error, duration_ms)
        except HelplineError:  # the database is away: the lease runs out and the delivery is tried again
            logger.warning("webhook delivery %d: outcome not recorded", delivery.id)

    async def _record(
        self,
        hook: Webhook,
        delivery: Delivery,
        status: int | None,
        retry_after: str | None,
        error: str | None,
        duration_ms: int,
    ) -> None:
        now = utcnow()
        attempts = delivery.attempts + 1
        outcome: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_error": error[:MAX_ERROR_CHARS] if error else None,
            "last_duration_ms": duration_ms,
        }
        delivered = error is None
        if delivered:
            outcome.update(status="delivered", delivered_at=now)
        else:
            wait = backoff_seconds(self.settings, attempts, retry_after, status)
            give_up_at = _aware(delivery.created_at) + timedelta(hours=self.settings.webhook_retry_hours)
            if delivery.body is None or now + timedelta(seconds=wait) > give_up_at:
                outcome.update(status="failed")
            else:
                outcome.update(next_attempt_at=now + timedelta(seconds=wait))
        paused = False
        async with self.store.write() as s:
            if not await s.finish_delivery(delivery.id, self.node, **outcome):
                return  # our lease ran out and another node took the delivery over: its outcome counts
            paused = await s.count_attempt(hook.id, succeeded=delivered, pause_after=self.pause_after)
        if self.metrics is not None:
            result = "delivered" if delivered else ("gave_up" if outcome.get("status") == "failed" else "retry")
            self.metrics.webhook_deliveries.labels(result).inc()
        if paused:
            logger.warning("webhook %s paused after %d failed attempts in a row", hook.id, self.pause_after)

    @property
    def pause_after(self) -> int:
        return max(1, self.settings.webhook_pause_after_failures)

    async def _prune_now_and_then(self, now: datetime) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        async with self.store.write() as s:
            await s.prune_deliveries(now - LOG_RETENTION)

    async def _listen(self) -> None:
        """Reload the append path's subscriptions when another node changes an endpoint (and regularly)."""
        while True:
            try:
                async with self.bus.subscribe([CONTROL_CHANNEL], maxsize=100) as subscription:
                    while True:
                        await subscription.wait(RELOAD_SECONDS)
                        await self._reload()
            except (SlowConsumer, HelplineError):  # the bus dropped messages or is reconnecting
                await asyncio.sleep(1)
                with contextlib.suppress(HelplineError):
                    await self._reload()

    async def _reload(self) -> None:
        was_empty = self.store.webhook_targets.empty
        await self.store.refresh_webhook_targets()
        if was_empty and not self.store.webhook_targets.empty:
            self.wake()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
