"""Everything a running server holds, built by the app's lifespan and torn down with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from helpline.api.ratelimit import RateLimiter
from helpline.bus import Bus
from helpline.config import Settings
from helpline.domain.accounts import Accounts
from helpline.domain.canned import CannedResponses
from helpline.domain.conversations import Conversations, publisher
from helpline.domain.notes import Notes
from helpline.domain.routing import Router
from helpline.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: Bus
    accounts: Accounts
    conversations: Conversations
    router: Router
    rate_limiter: RateLimiter
    login_limiter: RateLimiter
    notes: Notes
    canned: CannedResponses
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, store: Store, bus: Bus) -> Services:
        store.on_commit(publisher(bus))
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
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
            login_limiter=RateLimiter(settings.login_attempts_per_minute),
            notes=Notes(store),
            canned=CannedResponses(store),
        )
