"""Cluster-wide invalidation: when who a principal is changes, every node forgets what it cached.

Disabling a user, changing their permissions or revoking a credential (an API key) must take effect
on every node within a second (issue 13), while a database read per request for "who is this token"
costs a sixth of a message (bench/RESULTS.md), so nodes cache principals. The two meet here:

- :meth:`Invalidation.invalidate_principal` applies at once on this node (its handlers drop the cached
  principal and end that principal's open streams, which reconnect and authenticate afresh), then
  publishes one bus message so that every other node does the same;
- every node listens on one bus channel of its own (:data:`CHANNEL`, which no stream subscribes to);
- a cache may only trust its entries while that listener is known to hear everything:
  :meth:`Invalidation.cache_seconds` is the long lifetime while the listener is subscribed and has lost
  nothing since, and :data:`UNHEALTHY_CACHE_SECONDS` (1 s) otherwise. When the listener loses its
  subscription (the shared bus went away) every handler is told to forget everything.

Call it after the change has committed: a node that reloads the principal then reads the new state.
A load that was already in flight when an invalidation arrived must not be cached either; caches
compare :attr:`Invalidation.generation` before and after their read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from helpline.bus import Bus, Envelope, SlowConsumer
from helpline.errors import HelplineError

__all__ = ["CHANNEL", "EVENT_TYPE", "UNHEALTHY_CACHE_SECONDS", "Invalidation"]

logger = logging.getLogger("helpline.invalidation")

CHANNEL = "sys:invalidate"
EVENT_TYPE = "principal.invalidated"  # bus only: never stored, never on a stream
EVERYONE = "*"  # the payload that means "forget every principal"
UNHEALTHY_CACHE_SECONDS = 1.0
RESUBSCRIBE_SECONDS = 0.25

Handler = Callable[[str | None], None]  # a principal id, or None for "forget everything"


class Invalidation:
    """One per running app (``Services.invalidation``); its :meth:`run` task listens for other nodes."""

    def __init__(self, bus: Bus | None, cache_seconds: float = 5.0) -> None:
        self.bus = bus  # None: one process with no bus (the CLI), where applying locally is everything
        self._cache_seconds = cache_seconds
        self._handlers: list[Handler] = []
        self.generation = 0  # bumped on every invalidation applied here
        self._listening = False

    def on_invalidate(self, handler: Handler) -> None:
        """Register ``handler(principal_id)``; ``None`` means forget every principal."""
        self._handlers.append(handler)

    @property
    def healthy(self) -> bool:
        """Whether an invalidation published anywhere is sure to reach this node."""
        return self.bus is None or self._listening

    def cache_seconds(self) -> float:
        """How long a cache may trust what it reads about a principal, from now."""
        return self._cache_seconds if self.healthy else min(self._cache_seconds, UNHEALTHY_CACHE_SECONDS)

    async def invalidate_principal(self, principal_id: str) -> None:
        """Every node forgets ``principal_id`` (this one at once, the others within a second).

        Call it once the change is committed. A publish the bus cannot take is logged, not raised: the
        change is stored, and other nodes' caches expire within :meth:`cache_seconds` regardless.
        """
        self._apply(principal_id)
        if self.bus is None:
            return
        try:
            await self.bus.publish([CHANNEL], Envelope(None, EVENT_TYPE, principal_id))
        except HelplineError as exc:
            logger.warning("invalidation of %s not published: %s", principal_id, exc.detail)

    def _apply(self, principal_id: str | None) -> None:
        self.generation += 1
        for handler in self._handlers:
            try:
                handler(principal_id)
            except Exception:  # one broken handler must not keep the others stale
                logger.exception("invalidation handler failed")

    async def run(self) -> None:
        """Listen on :data:`CHANNEL` until cancelled, re-subscribing whenever the bus drops."""
        if self.bus is None:
            return
        while True:
            try:
                async with self.bus.subscribe([CHANNEL], maxsize=10_000) as subscription:
                    # Whatever was missed before this point is unknown: start from an empty cache.
                    self._apply(None)
                    self._listening = True
                    while not subscription.closed:
                        for envelope in await subscription.wait(None):
                            if envelope.type == EVENT_TYPE:
                                self._apply(None if envelope.payload == EVERYONE else envelope.payload)
            except SlowConsumer:
                logger.warning("invalidations may have been missed; every cached principal is dropped")
            except HelplineError:
                pass  # the bus is reconnecting: retry shortly, caching briefly meanwhile
            finally:
                if self._listening:
                    self._listening = False
                    self._apply(None)
            await asyncio.sleep(RESUBSCRIBE_SECONDS)
