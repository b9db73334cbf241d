"""The in-process bus: a dict of channel → subscriptions. Enough for one server process."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from helpline.bus.base import PRINCIPAL_PREFIX, Bus, Envelope, Subscription


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._channels: defaultdict[str, set[Subscription]] = defaultdict(set)

    async def publish(self, channels: list[str], envelope: Envelope) -> None:
        receiver = self.receiver
        if receiver is None:
            self.deliver(channels, envelope)
        else:
            receiver.offer(channels, envelope)

    def fan_out(self, channels: Sequence[str], envelope: Envelope) -> None:
        self.deliver(channels, envelope)

    def local_principals(self) -> list[str]:
        n = len(PRINCIPAL_PREFIX)
        return [channel[n:] for channel in self._channels if channel.startswith(PRINCIPAL_PREFIX)]

    def deliver(self, channels: Sequence[str], envelope: Envelope) -> None:
        for channel in channels:
            for subscription in tuple(self._channels.get(channel, ())):
                subscription.deliver(envelope)

    def lose_everything(self, *, except_from_log: bool = False) -> None:
        """Events may have been missed (a shared bus's subscription dropped): every inbox overflows, so
        each stream ends and its client resumes from the log; ``except_from_log`` spares the inboxes a
        log follower keeps supplied."""
        for subscriptions in tuple(self._channels.values()):
            for subscription in tuple(subscriptions):
                if not (except_from_log and subscription.from_log):
                    subscription.lose()

    def _attach(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            self._channels[channel].add(subscription)

    def _detach(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            members = self._channels.get(channel)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self._channels[channel]
