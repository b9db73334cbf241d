"""Everything a running server holds, built by the app's lifespan and torn down with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from helpline.bus import Bus
from helpline.config import Settings
from helpline.domain.accounts import Accounts
from helpline.domain.conversations import Conversations, publisher
from helpline.domain.delivery import LogFollower
from helpline.domain.faults import injected
from helpline.domain.routing import Router
from helpline.ratelimit import RateLimiter
from helpline.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: Bus
    accounts: Accounts
    conversations: Conversations
    router: Router
    delivery: LogFollower
    rate_limiter: RateLimiter
    login_limiter: RateLimiter
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, store: Store, bus: Bus) -> Services:
        delivery = LogFollower(store, bus, interval=settings.log_check_seconds)
        store.on_commit(delivery.publisher(injected(settings.fault_injection, publisher(bus))))
        router = Router(store, bus, settings)
        accounts, conversations = Accounts(store, settings), Conversations(store, bus)
        accounts.on_routing_change = conversations.on_routing_change = router.wake
        return cls(
            settings=settings,
            store=store,
            bus=bus,
            accounts=accounts,
            conversations=conversations,
            router=router,
            delivery=delivery,
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
            login_limiter=RateLimiter(settings.login_attempts_per_minute),
        )
