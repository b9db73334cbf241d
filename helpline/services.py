"""Everything a running server holds, built by the app's lifespan and torn down with it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from helpline.bus import Bus
from helpline.config import Settings
from helpline.domain.accounts import Accounts
from helpline.domain.conversations import Conversations
from helpline.domain.offers import Offers
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
    offers: Offers
    router: Router
    rate_limiter: RateLimiter
    login_limiter: RateLimiter

    @classmethod
    def build(
        cls, settings: Settings, store: Store, bus: Bus, *, connected_staff: Callable[[], Iterable[str]] = lambda: ()
    ) -> Services:
        """Wire the services: committed events go to the bus; what changes routing wakes the router;
        ``connected_staff`` names the staff with a stream open on this node (the router keeps presence)."""
        store.on_commit(bus.publish_events)
        router = Router(store, bus, settings, connected_staff=connected_staff)
        return cls(
            settings=settings,
            store=store,
            bus=bus,
            accounts=Accounts(store, settings, on_routing_change=router.wake),
            conversations=Conversations(store, bus, on_routing_change=router.wake),
            offers=Offers(store, router.wake),
            router=router,
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
            login_limiter=RateLimiter(settings.login_attempts_per_minute),
        )
