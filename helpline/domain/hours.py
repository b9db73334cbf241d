"""Business hours: is a deployment open at a given moment, in its own time zone.

A deployment's ``business_hours`` (all optional but ``timezone`` and ``weekly``)::

    {"timezone": "Europe/Paris",
     "weekly": {"mon": [["09:00", "12:30"], ["13:30", "18:00"]], "sat": [["10:00", "14:00"]]},
     "outside": "queue" | "refuse",
     "auto_reply": "We are closed; ..."}

Days not listed are closed; ``None`` business hours means always open.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_AUTO_REPLY = "Thanks for your message. We are outside our opening hours; we will answer as soon as we can."


def parse_time(text: str) -> time:
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"not a time: {text!r} (use HH:MM)")
    if (int(hours), int(minutes)) == (24, 0):
        return time.max
    return time(int(hours), int(minutes))


def validate(hours: dict[str, Any]) -> None:
    """Raise ValueError on anything :func:`is_open` could not evaluate, so bad config fails at the API."""
    try:
        ZoneInfo(str(hours["timezone"]))
    except (KeyError, ZoneInfoNotFoundError, ValueError):
        raise ValueError("business_hours.timezone must be an IANA time zone such as 'Europe/Paris'") from None
    for day, spans in dict(hours.get("weekly", {})).items():
        if day not in DAYS:
            raise ValueError(f"unknown day {day!r}: use {', '.join(DAYS)}")
        for start, end in spans:
            if parse_time(start) >= parse_time(end):
                raise ValueError(f"{day}: {start}-{end} ends before it starts")
    if hours.get("outside", "queue") not in ("queue", "refuse"):
        raise ValueError("business_hours.outside must be 'queue' or 'refuse'")


def is_open(hours: dict[str, Any] | None, moment: datetime) -> bool:
    if not hours:
        return True
    local = moment.astimezone(ZoneInfo(str(hours["timezone"])))
    spans = hours.get("weekly", {}).get(DAYS[local.weekday()], [])
    now = local.time().replace(tzinfo=None)
    return any(parse_time(start) <= now < parse_time(end) for start, end in spans)
