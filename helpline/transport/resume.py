"""Where a stream or a poll starts: the resume point, and the replay from the durable log.

Subscribe first, then replay, then go live (STYLE.md §5): the caller registers on the bus *before* it
reads the log, so an event committed during the replay is either in the replay or waiting in the
subscription, and de-duplication by id removes the overlap. That is what makes "no loss, no
duplicates" hold across reconnects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from helpline.bus.base import ALL, principal_channel
from helpline.domain.permissions import hidden_events, require_staff_chat, sees_everything
from helpline.events import EventType, envelope
from helpline.records import Principal, StoredEvent
from helpline.store import Store, StoreSession


def channel_of(principal: Principal) -> str:
    require_staff_chat(principal)
    return ALL if sees_everything(principal) else principal_channel(principal.id)


def recipient_filter(principal: Principal) -> str | None:
    """The principal whose fan-out rows a replay reads; ``None`` reads every event (supervisors)."""
    return None if sees_everything(principal) else principal.id


def foreign_offer(principal: Principal, event_type: str, payload: str) -> bool:
    """An offer is for the offered rep alone; the all-seeing channel of supervisors carries everyone's.

    Offer events name their rep in ``rep_id`` (domain/routing.py); a supervisor who is also a rep keeps
    its own offers and never sees another's (issue 11).
    """
    return event_type.startswith("offer.") and f'"rep_id":"{principal.id}"' not in payload


def parse_event_id(raw: str | None) -> int | None:
    """An event id from a header or query string; -1 for something that is not one (→ reset)."""
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return -1
    return int(raw)


@dataclass(slots=True)
class Replay:
    events: list[StoredEvent]
    last_id: int
    reset: bytes | None  # the stream.reset event's JSON when the resume point cannot be honoured
    start_id: int | None = None  # where the stream starts, when it is not a reset


def reset_payload(head: int, reason: str) -> str:
    body = {"id": head, **envelope(EventType.STREAM_RESET, None, {"reason": reason})}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def replay(store: Store, principal: Principal, after: int | None, limit: int) -> Replay:
    """The stored events after ``after`` that ``principal`` may see, or a reset when there is a gap.

    ``after=None`` (a brand-new client) starts at the head of the log. An id that is malformed, newer
    than the head, older than what the log retains, or further back than ``limit`` events yields a
    ``stream.reset`` (docs/protocol.md "Resume": never a silent gap) and the stream continues from the head.
    """

    async def read(s: StoreSession) -> Replay:
        head, oldest = await s.log_bounds()
        if after is None:
            return Replay([], head, None, head)
        reason = None
        if after < 0:
            reason = "malformed"
        elif after > head:
            reason = "unknown"
        elif after > 0 and after < oldest - 1:
            reason = "expired"
        if reason is None:
            who = recipient_filter(principal)
            events = await s.events_after(who, after, limit + 1)
            if len(events) <= limit:
                if who is None:
                    events = [e for e in events if not foreign_offer(principal, e.type, e.payload)]
                last = events[-1].id if events else after
                hidden = hidden_events(principal)  # re-checked now, whatever the recipients said then
                if hidden:
                    events = [e for e in events if e.type not in hidden]
                return Replay(events, last or after, None, after)
            reason = "too_far_behind"
        return Replay([], head, reset_payload(head, reason).encode())

    return await store.hot_read(read)
