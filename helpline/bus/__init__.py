"""The event bus: how a committed event reaches every stream that may show it, on any node.

Backends are chosen by URL scheme and import their driver only when chosen: ``memory://`` (one
process, the embedded default) and ``redis://`` / ``rediss://`` (several processes or nodes).
"""

from typing import TYPE_CHECKING

from helpline.bus.base import Bus, Envelope, SlowConsumer, Subscription, channels_for
from helpline.config import ConfigurationError

if TYPE_CHECKING:
    from helpline.bus.counters import SharedCounters

__all__ = ["Bus", "Envelope", "SlowConsumer", "Subscription", "channels_for", "open_bus", "open_counters"]


def open_bus(url: str) -> Bus:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from helpline.bus.memory import MemoryBus

        return MemoryBus()
    if scheme in ("redis", "rediss"):
        from helpline.bus.redis import RedisBus

        return RedisBus(url)
    raise ConfigurationError(f"unsupported bus URL scheme {scheme!r}: use memory:// or redis://")


def open_counters(url: str) -> "SharedCounters | None":
    """Cluster-wide rate limits and stream caps, when the bus is shared (Redis); None for memory://."""
    if url.split(":", 1)[0].lower() in ("redis", "rediss"):
        from helpline.bus.counters import SharedCounters

        return SharedCounters(url)
    return None
