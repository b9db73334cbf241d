"""The node's log follower: the durable log is the only source of truth, the bus only says "look".

Every stored event reaches this node's streams through one :class:`LogFollower`, which knows the
highest event id it has delivered to them (``delivered``) and delivers strictly in log order:

* **fast path**: the bus hands it id ``delivered + 1`` → fanned out at once (a comparison and the fan-out);
  an id it has delivered already (it came from the log first) → dropped;
* **gap**: the bus hands it an id ``X`` above ``delivered + 1`` → it reads the log for ``(delivered, X)``
  first. Ids are allocated in commit order under the append lock and published after the commit, so
  once ``X`` is published every smaller id is committed or never will be (a rolled-back turn leaves a
  hole that stays one): after that read, nothing below ``X`` can still appear;
* **head check** (every ``interval`` seconds, one indexed read of the newest id): finds events whose
  publish never came (their writer died between COMMIT and PUBLISH, the publish failed, the bus
  subscription is down) when nothing else arrives. A lost publish is a delay of at most about the
  interval, never a loss.

Visibility is what the log says: an event read from the log goes to ``all`` (supervisors) and to the
``p:<id>`` channel of each recipient among the principals that have a subscription on this node (one
primary-key range per such principal), exactly as its publish would have routed it. The read is done
once per node, not once per stream, and only when there is a gap. Envelopes arriving while a read is in
progress queue behind it, so order holds; each id is fanned out at most once, and a stream's own
"skip ids ≤ last sent" removes the overlap with its replay (subscribe, then replay: transport/resume.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from helpline.bus import Bus, Envelope, channels_for
from helpline.bus.base import ALL
from helpline.errors import HelplineError
from helpline.metrics import Metrics
from helpline.records import StoredEvent
from helpline.store import Store
from helpline.store.commit import Publisher

logger = logging.getLogger("helpline.delivery")

PAGE = 500  # events per log read while catching up


class LogFollower:
    def __init__(self, store: Store, bus: Bus, *, interval: float = 1.0, metrics: Metrics | None = None) -> None:
        self.store = store
        self.bus = bus
        self.interval = interval
        self.metrics = metrics
        self.delivered = 0
        self._pending: deque[tuple[Sequence[str], Envelope]] = deque()
        self._wanted_head = 0  # a head check found this id undelivered: read up to it
        self._catching_up: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started = False
        # Observability (metrics, tests): how often the log had to be read, and for how many events.
        self.fills = 0
        self.filled_events = 0
        self.head_checks = 0

    async def start(self) -> None:
        """Start at the head of the log (no stream exists yet) and take over the bus's deliveries."""
        self.delivered = await self._head()
        self.bus.receiver = self
        self._started = True
        if self.interval > 0:
            self._ticker = asyncio.create_task(self._tick(), name="helpline-log-follower")

    async def stop(self) -> None:
        self._started = False
        if self.bus.receiver is self:
            self.bus.receiver = None
        for task in (self._ticker, self._catching_up):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._catching_up = None

    # -- what the bus hands us ------------------------------------------------------------------
    def offer(self, channels: Sequence[str], envelope: Envelope) -> None:
        event_id = envelope.id
        if event_id is None:  # ephemeral (typing): live only, no order to keep
            self.bus.fan_out(channels, envelope)
            return
        if self._pending or self._busy():
            self._pending.append((channels, envelope))  # behind the read in progress, in order
            return
        if event_id <= self.delivered:
            return  # the log brought it already
        if event_id == self.delivered + 1:
            self.delivered = event_id
            self.bus.fan_out(channels, envelope)
            return
        self._pending.append((channels, envelope))
        self._catch_up()

    def bus_lost(self) -> None:
        logger.warning("bus subscription down: streams are served from the log every %.1f s", self.interval)

    def bus_back(self) -> None:
        self.look()  # what was published while the subscription was down

    def look(self) -> None:
        """Check the head of the log now (a publish failed, the bus came back)."""
        if self._started:
            self._wanted_head = -1  # "read the head first"
            self._catch_up()

    def publisher(self, publish: Publisher) -> Publisher:
        """``publish``, where a failure is logged and followed by an immediate look at the log: this
        node's streams get the events at once, the other nodes' at their next head check."""

        async def published(events: Sequence[StoredEvent]) -> None:
            try:
                await publish(events)
            except HelplineError:
                logger.warning("%d committed events were not published; streams read them from the log", len(events))
                self.look()

        return published

    # -- catching up from the log -----------------------------------------------------------------
    def _busy(self) -> bool:
        return self._catching_up is not None and not self._catching_up.done()

    def _catch_up(self) -> None:
        if not self._busy():
            self._catching_up = asyncio.create_task(self._run_catch_up(), name="helpline-log-catch-up")

    async def _run_catch_up(self) -> None:
        while True:
            try:
                if not await self._catch_up_once():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is unreachable: keep what is queued, try again shortly
                logger.warning("log follower: reading the log failed; retrying", exc_info=True)
                await asyncio.sleep(min(self.interval, 1.0) or 0.5)

    async def _catch_up_once(self) -> bool:
        """One step; False when there is nothing left to do."""
        pending = self._pending
        while pending:
            channels, envelope = pending[0]
            event_id = envelope.id or 0
            if event_id <= self.delivered:
                pending.popleft()
            elif event_id == self.delivered + 1:
                pending.popleft()
                self.delivered = event_id
                self.bus.fan_out(channels, envelope)
            else:
                break
        if pending:
            target = (pending[0][1].id or 0) - 1  # everything below a published id is committed, or never
        elif self._wanted_head:
            target = await self._head() if self._wanted_head < 0 else self._wanted_head
            self._wanted_head = 0
        else:
            return False
        if target > self.delivered:
            await self._fill(target)
        return True

    async def _fill(self, target: int) -> None:
        """Deliver every stored event in ``(delivered, target]`` from the log, then stand at ``target``."""
        self.fills += 1
        if self.metrics is not None:
            self.metrics.log_reads.inc()
        while self.delivered < target:
            after = self.delivered
            async with self.store.read() as s:
                events = [e for e in await s.events_after(None, after, PAGE) if (e.id or 0) <= target]
                upto = (events[-1].id or after) if len(events) == PAGE else target
                principals = self.bus.local_principals()
                pairs = await s.recipients_among(after, upto, principals) if principals and events else []
            recipients: dict[int, list[str]] = {}
            for event_id, principal in pairs:
                recipients.setdefault(event_id, []).append(principal)
            for event in events:
                event_id = event.id or 0
                if event_id <= self.delivered:
                    continue
                self.delivered = event_id
                channels = channels_for(recipients.get(event_id, ())) if event_id in recipients else [ALL]
                self.bus.fan_out(channels, Envelope(event_id, event.type, event.payload))
            self.filled_events += len(events)
            if self.metrics is not None:
                self.metrics.events_from_log.inc(len(events))
            self.delivered = max(self.delivered, upto)

    # -- the head check ---------------------------------------------------------------------------
    async def _head(self) -> int:
        return await self.store.hot_read(lambda s: s.head())

    async def _tick(self) -> None:
        grace = min(0.2, self.interval / 4)
        while True:
            await asyncio.sleep(self.interval)
            try:
                head = await self._head()
            except Exception:  # the database is down: nothing to deliver from it either
                logger.debug("log follower: head check failed", exc_info=True)
                continue
            self.head_checks += 1
            if head <= self.delivered:
                continue
            # Usually the bus is just about to bring it (its writer published a moment ago): give it a
            # moment, so a busy node does not read the log on every tick for nothing.
            await asyncio.sleep(grace)
            if head > self.delivered and not self._pending:
                self._wanted_head = max(self._wanted_head, head)
                self._catch_up()
            elif head > self.delivered:
                self._catch_up()
