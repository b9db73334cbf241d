"""Everything a running server holds, built by the app's lifespan and torn down with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from helpline.bus import Bus
from helpline.config import Settings
from helpline.domain.accounts import Accounts
from helpline.domain.attachments import Attachments
from helpline.domain.canned import CannedResponses
from helpline.domain.conversations import Conversations, publisher
from helpline.domain.delivery import LogFollower
from helpline.domain.escalation import Escalations
from helpline.domain.faults import injected
from helpline.domain.invalidation import Invalidation
from helpline.domain.notes import Notes
from helpline.domain.outbox import Outbox
from helpline.domain.ratings import Ratings
from helpline.domain.retention import Retention
from helpline.domain.routing import Router
from helpline.domain.webhook_delivery import DeliveryWorker, waking
from helpline.domain.webhooks import Webhooks
from helpline.metrics import Metrics
from helpline.ratelimit import RateLimiter
from helpline.store import Store
from helpline.store.attachments import choose_blobs


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: Bus
    accounts: Accounts
    conversations: Conversations
    router: Router
    follower: LogFollower
    attachments: Attachments
    ratings: Ratings
    outbox: Outbox
    invalidation: Invalidation
    rate_limiter: RateLimiter
    login_limiter: RateLimiter
    notes: Notes
    canned: CannedResponses
    webhooks: Webhooks
    deliveries: DeliveryWorker
    retention: Retention
    escalations: Escalations
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, store: Store, bus: Bus, metrics: Metrics | None = None) -> Services:
        follower = LogFollower(store, bus, interval=settings.log_check_seconds)
        deliveries = DeliveryWorker(store, bus, settings, metrics)
        published = follower.publisher(injected(settings.fault_injection, publisher(bus)))
        store.on_commit(waking(published, store, deliveries.wake))
        webhooks = Webhooks(store, bus, settings)
        webhooks.on_change = deliveries.wake
        router = Router(store, bus, settings)
        invalidation = Invalidation(bus, settings.principal_cache_seconds)
        accounts, conversations = Accounts(store, settings, invalidation), Conversations(store, bus)
        accounts.on_routing_change = conversations.on_routing_change = router.wake
        blobs = choose_blobs(settings.database_url, settings.attachment_storage, settings.attachment_dir)
        outbox = Outbox(store, settings)
        conversations.offline_replies, conversations.on_email = outbox.offline_reply, outbox.wake
        escalations = Escalations(conversations, settings)
        conversations.after_customer_message = escalations.after_customer_message
        return cls(
            settings=settings,
            store=store,
            bus=bus,
            accounts=accounts,
            conversations=conversations,
            router=router,
            follower=follower,
            attachments=Attachments(store, blobs, settings),
            retention=Retention(store, blobs, settings, invalidation),
            ratings=Ratings(store, settings),
            outbox=outbox,
            invalidation=invalidation,
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
            login_limiter=RateLimiter(settings.login_attempts_per_minute),
            notes=Notes(store),
            canned=CannedResponses(store),
            webhooks=webhooks,
            deliveries=deliveries,
            escalations=escalations,
        )
