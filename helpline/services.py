"""Everything a running server holds, built by the app's lifespan and torn down with it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpline.bus import Bus, open_counters
from helpline.config import Settings
from helpline.domain.accounts import Accounts
from helpline.domain.attachments import Attachments
from helpline.domain.canned import CannedResponses
from helpline.domain.conversations import Conversations
from helpline.domain.delivery import LogFollower
from helpline.domain.escalation import Escalations
from helpline.domain.faults import injected
from helpline.domain.invalidation import Invalidation
from helpline.domain.notes import Notes
from helpline.domain.offers import Offers
from helpline.domain.outbox import Outbox
from helpline.domain.ratings import Ratings
from helpline.domain.retention import Retention
from helpline.domain.routing import Router
from helpline.domain.webhook_delivery import DeliveryWorker, waking
from helpline.domain.webhooks import Webhooks
from helpline.events import EventType
from helpline.metrics import Metrics
from helpline.ratelimit import Limiter
from helpline.records import StoredEvent
from helpline.store import Store
from helpline.store.attachments import choose_blobs
from helpline.store.commit import Publisher

if TYPE_CHECKING:
    from helpline.bus.counters import SharedCounters  # imports redis: only where the bus is Redis


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: Bus
    accounts: Accounts
    conversations: Conversations
    offers: Offers
    router: Router
    follower: LogFollower
    attachments: Attachments
    ratings: Ratings
    outbox: Outbox
    invalidation: Invalidation
    counters: SharedCounters | None  # cluster-wide counts, with a Redis bus
    rate_limiter: Limiter
    login_limiter: Limiter
    notes: Notes
    canned: CannedResponses
    webhooks: Webhooks
    deliveries: DeliveryWorker
    retention: Retention
    escalations: Escalations

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: Store,
        bus: Bus,
        metrics: Metrics | None = None,
        *,
        connected: Callable[[], Iterable[str]] = lambda: (),
    ) -> Services:
        """Wire the services: committed events go to the bus (and wake the webhook worker); what changes
        routing wakes the router; ``connected`` names the principals with a stream open on this node."""
        follower = LogFollower(store, bus, interval=settings.log_check_seconds, metrics=metrics)
        deliveries = DeliveryWorker(store, bus, settings, metrics)
        published = follower.publisher(injected(settings.fault_injection, bus.publish_events))
        if metrics is not None:
            published = counted(published, metrics)
        store.on_commit(waking(published, store, deliveries.wake))
        router = Router(store, bus, settings, connected_staff=connected, metrics=metrics)
        invalidation = Invalidation(bus, settings.principal_cache_seconds)
        counters = open_counters(settings.bus_url)
        blobs = choose_blobs(settings.database_url, settings.attachment_storage, settings.attachment_dir)
        outbox = Outbox(store, settings, connected=connected)
        escalations = Escalations(store, settings, on_routing_change=router.wake)
        return cls(
            settings=settings,
            store=store,
            bus=bus,
            accounts=Accounts(store, settings, invalidation, on_routing_change=router.wake),
            conversations=Conversations(
                store,
                bus,
                on_routing_change=router.wake,
                outbox=outbox,
                after_customer_message=escalations.after_customer_message,
                metrics=metrics,
            ),
            offers=Offers(store, router.wake, metrics),
            router=router,
            follower=follower,
            attachments=Attachments(store, blobs, settings),
            retention=Retention(store, blobs, settings, invalidation),
            ratings=Ratings(store, settings),
            outbox=outbox,
            invalidation=invalidation,
            counters=counters,
            rate_limiter=Limiter(settings.rate_limit_per_minute, counters),
            login_limiter=Limiter(settings.login_attempts_per_minute, counters),
            notes=Notes(store),
            canned=CannedResponses(store),
            webhooks=Webhooks(store, bus, settings, on_change=deliveries.wake),
            deliveries=deliveries,
            escalations=escalations,
        )


def counted(publish: Publisher, metrics: Metrics) -> Publisher:
    """Count the contact-center events of each commit (offers made, refused, timed out; closes by
    disposition) on their way to the bus: cheap, in process, and only what was durably stored."""

    async def count_and_publish(events: Sequence[StoredEvent]) -> None:
        for event in events:
            if event.type == EventType.OFFER_CREATED:
                metrics.offers.labels("created").inc()
            elif event.type == EventType.OFFER_REVOKED:
                reason = event.data().get("reason")
                if reason in REFUSALS:
                    metrics.offers.labels(REFUSALS[reason]).inc()
            elif event.type == EventType.CONVERSATION_CLOSED:
                metrics.conversations_closed.labels(event.data().get("disposition") or "none").inc()
        await publish(events)

    return count_and_publish


REFUSALS = {"declined": "declined", "timeout": "expired"}  # offer.revoked reasons that end an offer unanswered
