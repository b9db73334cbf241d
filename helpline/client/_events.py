"""`Event`, what `events()` yields, and its decoding from an SSE frame or a long-poll answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helpline.client._errors import ProtocolError, as_object
from helpline.sse import ServerSentEvent


@dataclass(frozen=True, slots=True)
class Event:
    """One Helpline event: `type` (e.g. `conversation.message`) and its JSON `data`.

    `id` is None for ephemeral events (typing), which are neither stored nor replayed.
    """

    id: int | None
    type: str
    data: dict[str, Any]


def parse_event_id(value: object) -> int | None:
    """An event id as the wire carries it (SSE `id:` or a JSON field): an integer, or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ProtocolError(f"event ids are integers, got {value!r}")


def event_from_sse(sse: ServerSentEvent) -> Event:
    try:
        data = as_object(sse.json())
    except ValueError as exc:
        raise ProtocolError("an event's data is not JSON") from exc
    event_type = sse.event if sse.event != "message" else str(data.get("type", "message"))
    return Event(parse_event_id(sse.id), event_type, data)


def event_from_json(value: Any) -> Event:
    """An element of a long-poll answer: the same object an SSE `data:` line carries, id included."""
    data = as_object(value)
    return Event(parse_event_id(data.get("id")), str(data.get("type", "message")), data)
