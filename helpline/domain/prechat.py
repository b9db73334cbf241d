"""Pre-chat answers (issue 12): checked against the deployment's fields, and the queue they choose.

A deployment defines its pre-chat form as fields ``{name, label, type, required, options}``: ``type`` is
``text`` (the default), ``email`` or ``select``; a ``select`` has ``options`` ``{value, label, queue?}``,
and an option with a ``queue`` routes the conversation there instead of the deployment's queue. The
widget builds its form from these fields and checks the answers itself; the server checks them again
here, so an answer the form would refuse is refused by the API too, with a 422 naming each field.

A verified customer (``identity_token``) is not asked what the company already told us: an ``email``
field is known from the identity's email, a field named ``name`` from its display name.
"""

from __future__ import annotations

import re
from typing import Any

from helpline.errors import ValidationFailed

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_ANSWER_CHARS = 2000


def known_answers(
    fields: list[dict[str, Any]], *, verified: bool, email: str | None, name: str | None
) -> dict[str, str]:
    """The answers a verified customer's identity already gives (nothing for a guest)."""
    if not verified:
        return {}
    known: dict[str, str] = {}
    for field in fields:
        if field.get("type") == "email" and email:
            known[field["name"]] = email
        elif field["name"] == "name" and name:
            known[field["name"]] = name
    return known


def still_asked(fields: list[dict[str, Any]], known: dict[str, str]) -> list[dict[str, Any]]:
    """The fields the form must still show: those whose answer is not known."""
    return [field for field in fields if field["name"] not in known]


def checked(fields: list[dict[str, Any]], answers: dict[str, Any], known: dict[str, str]) -> dict[str, str]:
    """The answers to store (known ones filled in), or ValidationFailed naming every field at fault."""
    by_name = {field["name"]: field for field in fields}
    errors: list[dict[str, Any]] = []

    def fault(name: str, message: str, kind: str) -> None:
        errors.append({"loc": ["body", "pre_chat", name], "msg": message, "type": kind})

    for name in answers:
        if name not in by_name:
            fault(name, "this deployment asks no such question", "extra_forbidden")
    result: dict[str, str] = {}
    for name, field in by_name.items():
        raw = answers.get(name)
        value = raw.strip() if isinstance(raw, str) else ""
        if raw is not None and not isinstance(raw, str):
            fault(name, "the answer must be text", "string_type")
            continue
        if not value:
            value = known.get(name, "")
        if not value:
            if field.get("required"):
                fault(name, f"'{field['label']}' is required", "missing")
            continue
        if len(value) > MAX_ANSWER_CHARS:
            fault(name, f"at most {MAX_ANSWER_CHARS} characters", "string_too_long")
        elif field.get("type") == "email" and not EMAIL.match(value):
            fault(name, "this is not an email address", "value_error")
        elif field.get("type") == "select" and value not in {o["value"] for o in field.get("options", [])}:
            fault(name, "choose one of the offered options", "literal_error")
        else:
            result[name] = value
    if errors:
        detail = "; ".join(f"pre_chat.{e['loc'][2]}: {e['msg']}" for e in errors[:5])
        raise ValidationFailed(detail, errors=errors)
    return result


def routed_queue(fields: list[dict[str, Any]], answers: dict[str, str]) -> str | None:
    """The name of the queue the answers choose (the first select option with one), or None."""
    for field in fields:
        if field.get("type") != "select" or field["name"] not in answers:
            continue
        for option in field.get("options", []):
            if option["value"] == answers[field["name"]] and option.get("queue"):
                return str(option["queue"])
    return None


def routing_queues(fields: list[dict[str, Any]]) -> set[str]:
    """Every queue name the fields may route to (checked to exist when a deployment is saved)."""
    return {
        str(option["queue"])
        for field in fields
        if field.get("type") == "select"
        for option in field.get("options", [])
        if option.get("queue")
    }
