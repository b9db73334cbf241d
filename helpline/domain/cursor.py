"""The cursor of conversation lists: the (created_at, id) of a page's last row, opaque to clients."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from helpline.errors import ValidationFailed
from helpline.records import Conversation, isoformat


def encode_cursor(conversation: Conversation) -> str:
    raw = json.dumps([isoformat(conversation.created_at), conversation.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, last_id = json.loads(raw)
        moment = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        if not isinstance(last_id, str):
            raise TypeError(last_id)
    except (ValueError, TypeError):
        raise ValidationFailed("the cursor is malformed") from None
    return moment, last_id
