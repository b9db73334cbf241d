"""The router: offers queued conversations to reps, and keeps everyone told where things stand.

Rules (issue 4): a queued conversation is offered to the *available* rep of its queue (online, a
member of the queue, free capacity) with the most free capacity, ties to the one longest without new
work. An offer not answered within ``offer_timeout_seconds`` is revoked and the next rep is tried; a
rep who declined or let it expire is not offered the same conversation again for
``refusal_cooldown_seconds``. Customers in the queue are told their position and an estimated wait
whenever it changes.

Only reps who can answer are offered work (issue 11): they hold ``chat_rep`` *and*
``access_conversation_entries``, and have a stream open, so the offer reaches a screen. When a node sees
a rep's last stream close it records it (``stream_closed_at``); no new offer goes to that rep until a
stream opens again (then at once), and offers it already holds are withdrawn, without the refusal
cooldown, if it has not come back within ``presence_touch_seconds`` (a reload keeps them).

Correctness under concurrency does not depend on timing: every decision is taken and written inside
one ``Store.write()`` turn of the store's single writer (on PostgreSQL also holding the advisory lock),
re-reading the state it decides on; so two nodes' routers, or a router and a rep's accept, are ordered.

Cost follows changes, not the queue's length (issue 16). An idle tick asks one bounded statement
(:class:`~helpline.records.RouterPulse`): the log's head, whether offers are open, whether a rep's
streams are gone or a customer silent. Every change to a queue appends an event, so with the head where
the last pass left it, no wake, and no refusal holding work back, there is nothing to route and no
statistics to recompute; a full pass still runs every ``FULL_PASS_SECONDS`` (the wallboard's service
level moves with the clock alone, and a change that appended nothing is caught there). A pass counts
each queue on an index, offers only its head (as many as the reps have room for), and tells a position
only to the customers whose position changed: new arrivals at the tail get theirs from the count, and
only after someone left does the database rank the queue to find who moved up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from helpline import events
from helpline.bus import Bus, Envelope
from helpline.bus.base import ALL
from helpline.config import Settings
from helpline.domain.log import SYSTEM, audience, automatic_message, close_conversation, revoke_offer
from helpline.events import EventType
from helpline.metrics import Metrics
from helpline.records import Conversation, Offer, QueueSummary, RepLoad, isoformat, new_id, utcnow
from helpline.store import Store, StoreSession

logger = logging.getLogger("helpline.routing")
DEFAULT_WAIT_SECONDS = 60.0
FULL_PASS_SECONDS = 5.0  # at least this often a tick routes and recomputes the statistics, changes or not


def best_rep(candidates: Iterable[RepLoad]) -> RepLoad | None:
    """Most free capacity; ties to the longest without new work (never-assigned reps first)."""
    floor = datetime.min.replace(tzinfo=None)

    def key(rep: RepLoad) -> tuple[int, float]:
        since = rep.idle_since.replace(tzinfo=None) if rep.idle_since else floor
        return (rep.free, -(since - floor).total_seconds())

    return max(candidates, key=key, default=None)


class Router:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: Settings,
        *,
        connected_staff: Callable[[], Iterable[str]] = lambda: (),
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics  # handle times of conversations closed for inactivity
        self.bus = bus
        self.settings = settings
        self._wake = asyncio.Event()
        self._last_stats = ""
        self._last_touch = datetime.min.replace(tzinfo=utcnow().tzinfo)
        self.connected_staff = connected_staff  # the staff ids with a stream open on this node
        # What the last full pass saw (the log's head), whether a change came since (wake), whether a
        # refusal's cooldown held work back (then every tick routes, as the cooldown ends with the clock).
        self._seen_head = -1
        self._changed = True
        self._held_back = False
        self._last_full = datetime.min.replace(tzinfo=utcnow().tzinfo)

    def wake(self) -> None:
        """Something changed (a conversation queued, an offer answered, a rep freed): route now."""
        self._changed = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.router_tick_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # one bad tick (the database restarting) must not stop routing for good
                logger.exception("routing tick failed")
                await asyncio.sleep(1)

    async def tick(self, now: datetime | None = None) -> None:
        """One pass of every rule that has something to do; ``now`` lets tests move the clock instead of
        sleeping. What is due is asked first, in one statement whatever the queues' length."""
        now = now or utcnow()
        presence_cutoff = now - timedelta(seconds=self.settings.presence_grace_seconds)
        warn_after = self.settings.inactivity_warning_seconds
        silent_since = now - timedelta(seconds=max(0.0, warn_after))
        pulse = await self.store.hot_read(lambda s: s.router_pulse(presence_cutoff, silent_since))
        # A rep set offline or an offer revoked frees a conversation: it is routed in this same tick.
        if await self.keep_presence(now, due=pulse.reps_gone):
            self._changed = True
        if pulse.pending_offers and await self.expire_offers(now):
            self._changed = True
        woken = self._changed
        full = woken or pulse.head != self._seen_head or self._full_pass_due(now)
        summaries = None
        if full or self._held_back:
            self._changed = False
            self._seen_head = pulse.head
            summaries = await self.route(now, woken=woken)
        if pulse.inactive and warn_after > 0:
            await self.sweep_inactivity(now)
        if full:
            self._last_full = now
            await self.publish_stats(summaries)  # the queues as the turn just counted them, if it did

    def _full_pass_due(self, now: datetime) -> bool:
        return abs((now - self._last_full).total_seconds()) >= FULL_PASS_SECONDS

    # -- offers ----------------------------------------------------------------------------------
    async def expire_offers(self, now: datetime) -> bool:
        """Revoke the offers unanswered past their time, and those of reps gone; whether any were."""
        async with self.store.read() as s:
            due = bool(await s.pending_offers(expired_by=now)) or bool(await self._unreachable_offers(s, now))
        if not due:
            return False
        async with self.store.write() as s:
            for offer in await s.pending_offers(expired_by=now):
                await revoke_offer(s, offer.id, offer.conversation_id, offer.user_id, "timeout", status="expired")
            for offer in await self._unreachable_offers(s, now):
                # Not the rep's refusal: no cooldown, and the customer is offered to someone else now.
                await revoke_offer(s, offer.id, offer.conversation_id, offer.user_id, "unavailable")
        return True

    async def _unreachable_offers(self, s: StoreSession, now: datetime) -> list[Offer]:
        """Open offers of reps whose last stream closed over ``presence_touch_seconds`` ago."""
        offers = await s.pending_offers()
        if not offers:
            return []
        grace = now - timedelta(seconds=self.settings.presence_touch_seconds)
        connected = self._connected()
        gone = set()
        for user_id in {o.user_id for o in offers} - connected:
            loads = await s.rep_loads(user_id=user_id)
            if loads and loads[0].stream_closed and _aware(loads[0].stream_closed_at) <= grace:
                gone.add(user_id)
        return [o for o in offers if o.user_id in gone]

    async def route(self, now: datetime, *, woken: bool = False) -> dict[str, QueueSummary] | None:
        """Offer and tell positions; return the queues' summaries as the write turn counted them (None
        when there was nothing to do and no turn was taken).

        Woken by a change on this node (a conversation queued, an offer answered), the router goes straight
        to the write turn and counts the queues once, in it. Otherwise it decides on a read whether anything
        is to be done: a write is a turn of the single writer, which every message send needs too, so a
        tick with nothing to do must not take one.
        """
        work = None if woken else await self._work()
        self._held_back = False
        if work is not None and not work:
            return None
        async with self.store.write() as s:
            # Read inside the turn: what is decided and written is what is there now.
            summaries = await s.queue_summaries()
            for queue_id, summary in summaries.items():
                if work is None or queue_id in work:
                    await self._offer_queue(s, queue_id, now)
                    await self._tell_positions(s, summary)
        return summaries

    async def _work(self) -> list[str]:
        """The queues with something to do: a customer to tell a position, or one to offer to a rep."""
        found = []
        async with self.store.read() as s:
            for queue_id, summary in (await s.queue_summaries()).items():
                if not summary.settled:
                    found.append(queue_id)  # someone joined or left: positions to tell
                    continue
                if any(self.routable(r) and r.free > 0 for r in await s.rep_loads(queue_id=queue_id)):
                    if await s.queue_head(queue_id, 1):
                        found.append(queue_id)  # someone could be offered a waiting conversation
        return found

    async def _offer_queue(self, s: StoreSession, queue_id: str, now: datetime) -> None:
        """Offer the head of the queue to the reps with room: only as many conversations are read as
        could be offered, and a few more for those the reps refused lately."""
        reps = {r.id: r for r in await s.rep_loads(queue_id=queue_id) if self.routable(r)}
        room = sum(r.free for r in reps.values() if r.free > 0)
        cooldown = now - timedelta(seconds=self.settings.refusal_cooldown_seconds)
        after = None
        while room > 0:
            limit = room + 4
            page = await s.queue_head(queue_id, limit, after)
            for conversation in page:
                refusers = await s.recent_refusers(conversation.id, cooldown)
                rep = best_rep(r for r in reps.values() if r.free > 0 and r.id not in refusers)
                if rep is None:
                    self._held_back = True  # refused lately by every rep with room: try again next tick
                    continue
                await self._offer(s, conversation, rep, now)
                reps[rep.id] = replace(rep, pending=rep.pending + 1)
                room -= 1
                if room <= 0:
                    return
            if len(page) < limit:
                return  # the rest of the queue was read
            after = page[-1]

    async def _offer(self, s: StoreSession, conversation: Conversation, rep: RepLoad, now: datetime) -> None:
        expires = now + timedelta(seconds=self.settings.offer_timeout_seconds)
        offer = await s.insert_offer(
            id=new_id("ofr"), conversation_id=conversation.id, user_id=rep.id, created_at=now, expires_at=expires
        )
        await s.append(
            EventType.OFFER_CREATED,
            {
                "offer_id": offer.id,
                "rep_id": rep.id,
                "offer_conversation_id": conversation.id,
                "expires_at": isoformat(expires),
                "timeout_seconds": self.settings.offer_timeout_seconds,
                "conversation": conversation.public(),
                **await offer_preview(s, conversation),
            },
            conversation_id=None,
            recipients={rep.id},
        )

    def routable(self, rep: RepLoad) -> bool:
        """Online, able to read and answer (ACE), and with a stream open (here, or not known closed)."""
        if rep.presence != "online" or not rep.routable:
            return False
        return rep.id in self._connected() or not rep.stream_closed

    def _connected(self) -> set[str]:
        return set(self.connected_staff())

    async def _tell_positions(self, s: StoreSession, summary: QueueSummary) -> None:
        """Tell the customers whose position changed their new one (and an estimated wait)."""
        if summary.settled:
            return
        queue_id = summary.queue_id
        moved: list[tuple[Conversation, int]] = []
        if summary.told == summary.last_position:  # nobody left since the last pass: 1..told are right
            joined = await s.untold(queue_id)
            if joined and not await s.told_after(queue_id, joined[0]):  # they joined at the tail
                moved = [(c, summary.told + n) for n, c in enumerate(joined, start=1)]
        if not moved:
            moved = await s.misplaced(queue_id)  # someone left, or joined ahead of others: rank the queue
        if not moved:
            return
        waits = await s.recent_waits(queue_id)
        per_slot = statistics.fmean(waits) if waits else DEFAULT_WAIT_SECONDS
        present = sum(1 for r in await s.rep_loads(queue_id=queue_id) if r.presence == "online")
        for conversation, position in moved:
            await s.update_conversation(conversation.id, queue_position=position)
            await s.append(
                EventType.CONVERSATION_ROUTING,
                {
                    "state": "queued",
                    "queue_id": queue_id,
                    "position": position,
                    # No estimate while no rep is online: any number would be made up (issue 12); the
                    # widget says no one is available and offers to continue by email.
                    "estimated_wait_seconds": round(per_slot * position / present) if present else None,
                    "reps_online": present,
                    "assignee": None,
                },
                conversation_id=conversation.id,
                recipients=audience(conversation),
            )

    # -- presence --------------------------------------------------------------------------------
    async def keep_presence(self, now: datetime, *, due: bool = True) -> bool:
        """Mark reps whose streams have all been gone for the grace period as offline; whether any were.

        Each node records, every ``presence_touch_seconds``, which staff have a stream open on it; a rep
        no node has seen for ``presence_grace_seconds`` is set offline, remembering the presence to give
        back when it reconnects (:meth:`rep_connected`). ``due``: the tick's pulse saw such a rep.
        """
        connected = list(self.connected_staff())
        if connected and (now - self._last_touch).total_seconds() >= self.settings.presence_touch_seconds:
            async with self.store.write() as s:
                await s.touch_streams(connected, now)
            self._last_touch = now
        if not due:
            return False
        cutoff = now - timedelta(seconds=self.settings.presence_grace_seconds)
        async with self.store.read() as s:
            gone = [r for r in await s.reps_gone_since(cutoff) if r[0] not in connected]
        if not gone:
            return False
        async with self.store.write() as s:
            for user_id, display_name, presence in await s.reps_gone_since(cutoff):
                if user_id in connected:
                    continue
                await s.update_user(
                    user_id, presence="offline", presence_before_disconnect=presence, presence_since=utcnow()
                )
                await s.append(
                    EventType.PRESENCE_CHANGED,
                    {"user_id": user_id, "display_name": display_name, "status": "offline", "reason": "disconnected"},
                    conversation_id=None,
                    recipients={user_id},
                )
                for offer in await s.pending_offers():
                    if offer.user_id == user_id:
                        await revoke_offer(s, offer.id, offer.conversation_id, user_id, "unavailable")
        return True

    async def rep_connected(self, user_id: str) -> None:
        """A rep's stream opened: give back the presence it had before it was marked disconnected, and
        route to it again at once if its last stream had been seen closing.

        Reads first, so the common case (nothing to restore) costs no write; ``keep_presence`` records
        open streams on its own schedule.
        """
        if not await self.store.hot_read(lambda s: s.rep_needs_reconnect(user_id)):
            return
        async with self.store.write() as s:
            restored = await s.presence_to_restore(user_id)
            user = await s.user(id=user_id)
            if user is None:
                return
            await s.update_user(user_id, last_stream_at=utcnow())  # newer than stream_closed_at: routable
            if not restored:
                self.wake()
                return
            await s.update_user(user_id, presence=restored, presence_before_disconnect=None, presence_since=utcnow())
            await s.append(
                EventType.PRESENCE_CHANGED,
                {"user_id": user_id, "display_name": user.display_name, "status": restored, "reason": "reconnected"},
                conversation_id=None,
                recipients={user_id},
            )
        self.wake()

    async def rep_disconnected(self, user_id: str) -> None:
        """This node's last stream of a rep closed (the client went away): route nothing new to it."""
        async with self.store.write() as s:
            await s.update_user(user_id, stream_closed_at=utcnow())

    # -- inactivity --------------------------------------------------------------------------------
    async def sweep_inactivity(self, now: datetime) -> None:
        warn_after = self.settings.inactivity_warning_seconds
        if warn_after <= 0:
            return
        silent_since = now - timedelta(seconds=warn_after)
        async with self.store.read() as s:
            candidates = await s.inactive_conversations(silent_since, status="assigned")
        if not candidates:
            return
        close_after = timedelta(seconds=self.settings.inactivity_close_seconds)
        async with self.store.write() as s:
            for stale in candidates:
                conversation = await s.conversation(stale.id, for_update=True)
                if conversation is None or conversation.status != "assigned":
                    continue
                # Silence counts from the customer's last word or the rep's arrival, whichever is later:
                # waiting in the queue is not inactivity.
                moments = [m for m in (conversation.last_customer_at, conversation.assigned_at) if m is not None]
                if not moments or max(_aware(m) for m in moments) >= silent_since:
                    continue
                if conversation.inactivity_warned_at is None:
                    minutes = max(1, round(close_after.total_seconds() / 60))
                    await s.update_conversation(conversation.id, inactivity_warned_at=now)
                    text = f"Are you still there? This chat will close in {minutes} minute(s)."
                    await automatic_message(s, conversation, text, "inactivity-warning")
                elif _aware(conversation.inactivity_warned_at) + close_after <= now:
                    closed = await close_conversation(s, conversation, SYSTEM, reason="inactivity")
                    if self.metrics is not None:  # counted before the commit: a rare rollback overcounts
                        self.metrics.handled(closed.assigned_at, closed.closed_at)

    # -- supervision -------------------------------------------------------------------------------
    async def queue_stats(self, summaries: dict[str, QueueSummary] | None = None) -> list[dict[str, Any]]:
        """The wallboard's figures; ``summaries``: the queues' counts if a write turn just took them."""
        now = utcnow()
        async with self.store.read() as s:
            stats = []
            ratings = await s.rating_averages(now - timedelta(days=self.settings.rating_window_days))
            target = self.settings.service_level_seconds
            # Bots (issue 14): of today's (UTC) bot-handled conversations, contained vs handed to people.
            bots = await s.bot_outcomes(now.replace(hour=0, minute=0, second=0, microsecond=0))
            # Counted on indexes, never loaded: a queue of 10,000 costs what one of ten does (issue 16).
            if summaries is None:
                summaries = await s.queue_summaries()
            for queue in await s.queues():
                rating = ratings.get(queue.id)
                contained, escalated = bots.get(queue.id, (0, 0))
                summary = summaries.get(queue.id)
                waiting = summary.waiting if summary else 0
                reps = await s.rep_loads(queue_id=queue.id)
                current = await s.assigned_to([r.id for r in reps])
                oldest = await s.oldest_queued(queue.id) if waiting else None
                # Waiting beyond the target counts as a miss of the service level (hour_figures).
                overdue = waiting - await s.queued_since(queue.id, now - timedelta(seconds=target)) if waiting else 0
                rows = await s.queue_hour(queue.id, now - timedelta(hours=1))
                hour = hour_figures(rows, now, target, overdue=overdue)
                stats.append(
                    {
                        "queue_id": queue.id,
                        "name": queue.name,
                        "length": waiting,
                        "waiting": waiting,
                        "longest_wait_seconds": round((now - _aware(oldest)).total_seconds()) if oldest else 0,
                        "reps_online": sum(1 for r in reps if r.presence == "online"),
                        **hour,
                        # Satisfaction over the last rating_window_days (issue 12): None before any rating.
                        "rating_average": round(rating[0], 2) if rating else None,
                        "ratings": rating[1] if rating else 0,
                        "bot_user_id": queue.bot_user_id,
                        "bot_contained_today": contained,
                        "bot_escalated_today": escalated,
                        "reps": [
                            {
                                "id": r.id,
                                "display_name": r.display_name,
                                "presence": r.presence,
                                "active": r.active,
                                "pending_offers": r.pending,
                                "capacity": r.capacity,
                                "routable": r.routable,
                                "presence_since": isoformat(r.presence_since) if r.presence_since else None,
                                "conversations": current.get(r.id, []),
                            }
                            for r in reps
                        ],
                    }
                )
        return stats

    async def publish_stats(self, summaries: dict[str, QueueSummary] | None = None) -> None:
        """``queue.stats`` to supervisors when something changed: ephemeral, like typing."""
        queues = await self.queue_stats(summaries)
        fingerprint = json.dumps([{k: v for k, v in q.items() if k != "longest_wait_seconds"} for q in queues])
        if fingerprint == self._last_stats:
            return
        self._last_stats = fingerprint
        body = events.encode(EventType.QUEUE_STATS, None, {"queues": queues})
        await self.bus.publish([ALL], Envelope(None, EventType.QUEUE_STATS, body))


def hour_figures(rows: list[Any], now: datetime, target: float, *, overdue: int = 0) -> dict[str, Any]:
    """The wallboard's last hour of a queue: assigned now, average wait and handle time, service level.

    Service level: of the conversations that waited in the last hour, the share answered (assigned) within
    ``target`` seconds; one still waiting beyond the target counts as a miss, one waiting less is not
    counted yet. ``None`` when there is nothing to count. ``overdue``: how many are still waiting beyond
    the target, when the waiting ones are counted rather than given as rows.
    """
    since = now - timedelta(hours=1)
    waits, handles, met, counted = [], [], 0, overdue
    for status, queued_at, assigned_at, closed_at in rows:
        if assigned_at is not None and _aware(assigned_at) >= since and queued_at is not None:
            wait = max(0.0, (_aware(assigned_at) - _aware(queued_at)).total_seconds())
            waits.append(wait)
            counted += 1
            met += wait <= target
        elif status == "queued" and queued_at is not None:
            waited = (now - _aware(queued_at)).total_seconds()
            if waited > target:
                counted += 1
        if status == "closed" and closed_at is not None and assigned_at is not None and _aware(closed_at) >= since:
            handles.append(max(0.0, (_aware(closed_at) - _aware(assigned_at)).total_seconds()))
    return {
        "assigned": sum(1 for row in rows if row[0] == "assigned"),
        "avg_wait_seconds": round(statistics.fmean(waits)) if waits else None,
        "avg_handle_seconds": round(statistics.fmean(handles)) if handles else None,
        "service_level": round(met / counted, 3) if counted else None,
        "service_level_target_seconds": target,
    }


async def offer_preview(s: StoreSession, conversation: Conversation) -> dict[str, Any]:
    """What a rep sees before accepting: the customer's name and email, and their first message."""
    customer = await s.customer(id=conversation.customer_id)
    first = await s.conversation_events(conversation.id, after=None, before=None, limit=20)
    preview = next(
        (
            e.data().get("text", "")
            for e in first
            if e.type == EventType.CONVERSATION_MESSAGE and _by_customer(e.data())
        ),
        None,
    )
    return {
        "customer": {
            "id": conversation.customer_id,
            "display_name": customer.display_name if customer else "Customer",
            "email": customer.email if customer else None,
            "verified": customer.verified if customer else False,
        },
        "preview": preview[:280] if preview else None,
    }


def _by_customer(data: dict[str, Any]) -> bool:
    author = data.get("author")
    return isinstance(author, dict) and author.get("kind") == "customer"


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
