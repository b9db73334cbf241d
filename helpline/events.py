"""The event catalogue: every event type, whether it is stored, who may see it, and its fields.

One line per type, here and nowhere else: the server names types through :class:`EventType`, every
event's JSON starts with the envelope :func:`envelope` builds, the browser code imports the list this
module renders (``GET /static/events.js``), ``docs/events.md``'s table is this catalogue rendered (a
test checks it; ``python -m helpline.events docs/events.md`` rewrites it), and the tests read it.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from helpline.records import isoformat, utcnow

# Who may see an event (supervisors see every event on the event stream, whatever its audience).
PARTIES = "the customer and the assignee"
READERS = "the customer, and the assignee if it has `access_conversation_entries`"
OFFERED_REP = "the offered rep"
THE_REP = "the rep itself"
SUPERVISORS = "supervisors"
THE_STREAM = "the stream's own client"
DOCTOR = "`GET /api/v1/diagnostics/stream` (`helpline doctor`)"
WEBHOOK = "one webhook endpoint (`POST /api/v1/admin/webhooks/{id}/test`), never a stream"


class Stored(StrEnum):
    """Whether an event is a row of the log: replayed on resume, listed among a conversation's entries."""

    YES = "yes"
    LIVE = "no (live only, no `id:`)"
    NO = "no"


class EventType(StrEnum):
    """An event type: its name (the SSE ``event:`` field and ``data.type``) and what the catalogue says.

    ``handled``: the browser code listens for it by name (``stream.js``); the stream's opening event and
    heartbeats are read by ``stream.js`` itself, and probes only by ``helpline doctor``.
    """

    stored: Stored
    audience: str
    fields: str
    handled: bool

    def __new__(cls, name: str, stored: Stored, audience: str, fields: str, handled: bool = True) -> EventType:
        member = str.__new__(cls, name)
        member._value_ = name
        member.stored, member.audience, member.fields, member.handled = stored, audience, fields, handled
        return member

    # fmt: off
    CONVERSATION_CREATED = "conversation.created", Stored.YES, PARTIES, "`conversation` (as `GET /conversations/{id}`)"
    CONVERSATION_MESSAGE = "conversation.message", Stored.YES, READERS, "`message_id` (the client's id), `text`, `author {id, kind, display_name}`; `attachments [{id, name, content_type, size}]` when it carries files ([customers.md](customers.md)); `automatic` (`greeting`, `outside-hours`, `inactivity-warning`, `escalated`) on the ones Helpline writes"
    CONVERSATION_PARTICIPANT_CHANGED = "conversation.participant_changed", Stored.YES, PARTIES + " (a rep transferred away sees its own `left`)", "`action` (`joined`/`left`), `participant {id, kind, display_name}`"
    CONVERSATION_ROUTING = "conversation.routing", Stored.YES, PARTIES, "`state` (`queued`, `assigned`, `transferred`, `escalated`, `failed`), `queue_id`, `assignee`; `position`, `estimated_wait_seconds`, `reps_online` (0: the widget offers to continue by email) while queued; `reason` when failed; `bot: true` when a queue's bot took it ([integrations.md](integrations.md))"
    CONVERSATION_TYPING_STARTED = "conversation.typing_started", Stored.LIVE, PARTIES, "`by`"
    CONVERSATION_TYPING_STOPPED = "conversation.typing_stopped", Stored.LIVE, PARTIES, "`by`"
    CONVERSATION_DELIVERED = "conversation.delivered", Stored.YES, PARTIES, "`entry_id`, `by`"
    CONVERSATION_READ = "conversation.read", Stored.YES, PARTIES, "`entry_id`, `by`"
    CONVERSATION_CLOSED = "conversation.closed", Stored.YES, PARTIES, "`closed_by`, `reason`"
    CONVERSATION_NOTE = "conversation.note", Stored.YES, "staff only: the assignee if it has `access_conversation_entries` (and the note's author), never the customer", "`note_id`, `text`, `author`; `escalation` on an escalation's summary for whoever takes over"
    CONVERSATION_RATED = "conversation.rated", Stored.YES, READERS, "`score` (1-5), `comment` (or null), `by`: the customer's rating of an ended chat"
    OFFER_CREATED = "offer.created", Stored.YES, OFFERED_REP, "`offer_id`, `offer_conversation_id`, `expires_at`, `timeout_seconds`, `conversation`"
    OFFER_REVOKED = "offer.revoked", Stored.YES, OFFERED_REP, "`offer_id`, `offer_conversation_id`, `reason` (`declined`, `timeout`, `withdrawn`, `closed`, `unavailable`)"
    PRESENCE_CHANGED = "presence.changed", Stored.YES, THE_REP, "`user_id`, `display_name`, `status`; `reason` (`disconnected`, `reconnected`) when Helpline changed it"
    QUEUE_STATS = "queue.stats", Stored.LIVE, SUPERVISORS, "`queues: [{queue_id, name, length, longest_wait_seconds, reps_online, rating_average, ratings, bot_user_id, bot_contained_today, bot_escalated_today, reps}]`"
    STREAM_OPEN = "stream.open", Stored.NO, THE_STREAM, "`heartbeat_seconds` (this stream's interval), `heartbeat_min_seconds` (the shortest a client may ask for with `?heartbeat=`): the first event of every stream, sent with the padding; its `id:` is where the stream starts", False
    STREAM_RESET = "stream.reset", Stored.NO, THE_STREAM, "`reason` (`unknown`, `malformed`, `expired`, `too_far_behind`); its `id:` is the log's head: re-fetch state, then carry on"
    STREAM_HEARTBEAT = "stream.heartbeat", Stored.NO, THE_STREAM, "none: sent by default (with a `: heartbeat` comment in the same write) after every quiet interval, so page code, which never sees comments, can tell a silent stall; `HELPLINE_HEARTBEAT_EVENTS=0` sends the comment alone", False
    STREAM_RECONNECT = "stream.reconnect", Stored.NO, THE_STREAM, "`reason` (`lifetime`, `shutdown`, `revalidate`: the caller was disabled or its permissions changed, `slow`: the client fell too far behind): reconnect with your last id"
    DIAGNOSTICS_PROBE = "diagnostics.probe", Stored.NO, DOCTOR, "`n`, `phase` (`open`, `timed`, `after_quiet`), `server_time`", False
    DIAGNOSTICS_HEARTBEAT = "diagnostics.heartbeat", Stored.NO, DOCTOR, "`server_time`: during the quiet period, when `heartbeat` asks for them (the browser's `/diagnostics` page)", False
    WEBHOOK_TEST = "webhook.test", Stored.NO, WEBHOOK, "`webhook_id`; its `id` is `test_…`, not an id of the log", False
    # fmt: on


def stored_types() -> frozenset[str]:
    """The types of the log's rows: what a webhook may subscribe to."""
    return frozenset(str(t) for t in EventType if t.stored is Stored.YES)


def handled_types() -> list[str]:
    """The types the browser code listens for by name, in catalogue order."""
    return [str(t) for t in EventType if t.handled]


def envelope(
    event_type: EventType, conversation_id: str | None, fields: dict[str, Any], *, at: datetime | None = None
) -> dict[str, Any]:
    """An event's JSON object: ``type``, ``conversation_id``, ``at``, then its own fields."""
    return {"type": event_type, "conversation_id": conversation_id, "at": isoformat(at or utcnow()), **fields}


def encode(
    event_type: EventType, conversation_id: str | None, fields: dict[str, Any], *, at: datetime | None = None
) -> str:
    """:func:`envelope` as compact JSON text: what a ``data:`` line, the log and the bus carry."""
    return json.dumps(envelope(event_type, conversation_id, fields, at=at), separators=(",", ":"), ensure_ascii=False)


def javascript_module() -> str:
    """``/static/events.js``: the catalogue for the browser code (``stream.js`` imports it)."""
    constants = {t.name: str(t) for t in EventType}
    catalogue = {str(t): {"stored": t.stored is Stored.YES, "handled": t.handled} for t in EventType}
    return (
        "// Generated by the server from helpline/events.py, the event catalogue; do not edit.\n"
        "/** Every event type by name: `EventType.CONVERSATION_MESSAGE` is 'conversation.message'. */\n"
        f"export const EventType = Object.freeze({json.dumps(constants, indent=2)});\n"
        "/** What the catalogue says of each type: stored in the log, handled by page code. */\n"
        f"export const CATALOGUE = Object.freeze({json.dumps(catalogue, indent=2)});\n"
        "/** The event types page code listens for by name (EventSource dispatches named events only to them). */\n"
        f"export const EVENT_TYPES = Object.freeze({json.dumps(handled_types())});\n"
        "/** The types of the log's rows (replayed, listed as entries): what a webhook may subscribe to. */\n"
        f"export const STORED_TYPES = Object.freeze({json.dumps([t for t in map(str, EventType) if t in stored_types()])});\n"
    )


TABLE_START = "<!-- event catalogue: generated from helpline/events.py, `python -m helpline.events docs/events.md` -->"
TABLE_END = "<!-- end of the event catalogue -->"


def markdown_table() -> str:
    rows = ["| type | stored | who sees it | fields |", "|---|---|---|---|"]
    rows += [f"| `{t}` | {t.stored} | {t.audience} | {t.fields} |" for t in EventType]
    return "\n".join([TABLE_START, *rows, TABLE_END])


def with_table(document: str) -> str:
    """``document`` with its catalogue table replaced by the current one."""
    start, end = document.index(TABLE_START), document.index(TABLE_END) + len(TABLE_END)
    return document[:start] + markdown_table() + document[end:]


if __name__ == "__main__":  # python -m helpline.events docs/events.md
    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
