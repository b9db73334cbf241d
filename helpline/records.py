"""Plain records passed between the store, the domain services and the API, and how ids are made.

The bottom layer: the store fills these and the domain decides with them, so both import this module
and neither imports the other's rules. They are frozen dataclasses, not pydantic models: they cross
the hot path (message send, fan-out) where validation has already happened at the edge.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

PrincipalKind = Literal["staff", "customer"]
ConversationStatus = Literal["queued", "assigned", "closed"]
Presence = Literal["online", "busy", "away", "offline"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def isoformat(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever is calling: a staff user or a customer, with what they may do."""

    id: str
    kind: PrincipalKind
    display_name: str
    permissions: frozenset[str] = frozenset()
    deployment_id: str | None = None
    api_key_id: str | None = None  # set when the caller authenticated with an API key (issue 14)

    @property
    def is_customer(self) -> bool:
        return self.kind == "customer"

    def has(self, permission: str) -> bool:
        return self.kind == "staff" and permission in self.permissions


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    display_name: str
    password_hash: str
    permissions: tuple[str, ...]
    max_concurrent: int
    presence: str
    disabled: bool
    created_at: datetime
    idle_since: datetime | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "permissions": list(self.permissions),
            "max_concurrent": self.max_concurrent,
            "presence": self.presence,
            "disabled": self.disabled,
            "created_at": isoformat(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    name: str
    created_at: datetime
    bot_user_id: str | None = None  # a service agent that takes new conversations first (issue 14)
    dispositions: tuple[str, ...] = ()  # the wrap-up codes a rep picks from when closing (issue 11)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": isoformat(self.created_at),
            "dispositions": list(self.dispositions),
            "bot_user_id": self.bot_user_id,
        }


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    key: str
    queue_id: str
    allowed_origins: tuple[str, ...]
    pre_chat_fields: tuple[dict[str, Any], ...]
    business_hours: dict[str, Any] | None
    identity_key: str | None
    created_at: datetime
    greeting: str | None = None
    attachment_max_bytes: int | None = None  # None: the server's limit
    attachment_types: tuple[str, ...] | None = None  # None: the server's list
    retention_days: int | None = None  # None: keep conversations for ever

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "queue_id": self.queue_id,
            "allowed_origins": list(self.allowed_origins),
            "pre_chat_fields": list(self.pre_chat_fields),
            "business_hours": self.business_hours,
            "verified_identities": self.identity_key is not None,
            "created_at": isoformat(self.created_at),
            "greeting": self.greeting,
            "attachment_max_bytes": self.attachment_max_bytes,
            "attachment_types": list(self.attachment_types) if self.attachment_types is not None else None,
            "retention_days": self.retention_days,
        }


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    deployment_id: str
    external_id: str | None
    display_name: str
    email: str | None
    verified: bool
    created_at: datetime
    last_stream_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    customer_id: str
    deployment_id: str
    queue_id: str
    status: str
    assignee_id: str | None
    pre_chat: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    queued_at: datetime | None = None
    assigned_at: datetime | None = None
    queue_position: int | None = None
    last_customer_at: datetime | None = None
    inactivity_warned_at: datetime | None = None
    last_staff_at: datetime | None = None

    @property
    def waiting_since(self) -> datetime | None:
        """Since when the customer has waited for an answer: its last word, if no staff reply came after."""
        if self.status == "closed" or self.last_customer_at is None:
            return None
        if self.last_staff_at is not None and _utc(self.last_staff_at) >= _utc(self.last_customer_at):
            return None
        return self.last_customer_at

    rating: int | None = None
    rated_at: datetime | None = None
    bot_id: str | None = None  # the service agent that handled it first (issue 14)
    escalated_at: datetime | None = None  # when it was handed from the bot to a person
    client_id: str | None = None  # the id the customer's client chose, unique per customer

    def public(self, participants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "customer_id": self.customer_id,
            "deployment_id": self.deployment_id,
            "queue_id": self.queue_id,
            "assignee_id": self.assignee_id,
            "pre_chat": self.pre_chat,
            "participants": participants or [],
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
            "closed_at": isoformat(self.closed_at) if self.closed_at else None,
            "waiting_since": isoformat(self.waiting_since) if self.waiting_since else None,
            "bot_id": self.bot_id,
            "escalated_at": isoformat(self.escalated_at) if self.escalated_at else None,
        }


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of the log, as it goes on the wire.

    ``payload`` is the JSON text of the SSE ``data:`` line, encoded once at write time and shared by
    every recipient; ``recipients`` are the principals entitled to it (supervisors see everything).
    """

    id: int | None
    type: str
    conversation_id: str | None
    payload: str
    recipients: frozenset[str] = field(default_factory=frozenset)

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.payload)
        return loaded


@dataclass(frozen=True, slots=True)
class RepLoad:
    id: str
    display_name: str
    presence: str
    capacity: int
    active: int  # assigned, unclosed conversations
    pending: int  # offers waiting for an answer
    idle_since: datetime | None
    routable: bool = True  # holds access_conversation_entries: can read and answer what it is given
    last_stream_at: datetime | None = None  # a node last saw one of its streams open
    stream_closed_at: datetime | None = None  # a node saw its last stream close
    presence_since: datetime | None = None

    @property
    def free(self) -> int:
        return self.capacity - self.active - self.pending

    @property
    def stream_closed(self) -> bool:
        """Its last stream closed and no node has seen one open since: no new work until one opens."""
        if self.stream_closed_at is None:
            return False
        return self.last_stream_at is None or _utc(self.stream_closed_at) >= _utc(self.last_stream_at)


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """A queue's waiting conversations, counted on an index: how many, and the positions told so far."""

    queue_id: str
    waiting: int
    told: int  # how many have been told a position
    last_position: int  # the highest position told (0: none)

    @property
    def settled(self) -> bool:
        """Every waiting customer knows its position, and they are 1..waiting (the router's invariant)."""
        return self.told == self.waiting and self.last_position == self.waiting


@dataclass(frozen=True, slots=True)
class RouterPulse:
    """What an idle router tick looks at (one statement): has anything happened, is anything due."""

    head: int  # the log's newest event id: any change to the queues appends an event
    pending_offers: int
    reps_gone: bool  # a rep marked present has had no stream open since the presence cutoff
    inactive: bool  # an assigned conversation's customer has been silent since the inactivity cutoff


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    conversation_id: str
    user_id: str
    status: str
    created_at: datetime
    expires_at: datetime


# -- integrations (issue 14) ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    enabled: bool
    paused: bool
    failures: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: str
    event_id: int | None
    event_type: str
    conversation_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    last_duration_ms: int | None
    created_at: datetime
    delivered_at: datetime | None
    body: str | None = None  # the event's wire JSON, when read for sending


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    key_hash: str
    prefix: str
    permissions: tuple[str, ...]
    user_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def principal_id(self) -> str:
        """Who the key acts as: its user (a bot), or the key itself."""
        return self.user_id or self.id


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    id: str
    conversation_id: str
    uploader_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    storage: str
    message_event_id: int | None
    created_at: datetime
    thumbnail_type: str | None = None  # images only: the thumbnail's type (domain/thumbnails.py)

    def public(self) -> dict[str, Any]:
        """What a message carries, and what an upload answers (docs/protocol.md "Customers' extras")."""
        return {"id": self.id, "name": self.name, "content_type": self.content_type, "size": self.size}


@dataclass(frozen=True, slots=True)
class OutboxEmail:
    id: int
    kind: str
    conversation_id: str | None
    recipient: str
    subject: str
    body: str
    attempts: int
