"""The relational schema, shared by SQLite and PostgreSQL (SQLAlchemy Core).

``events`` is the append-only log every stream resumes from: its integer id is the SSE event id.
``event_recipients`` is fan-out-on-write: one row per principal who may see an event, so a replay is
one indexed range scan and visibility is decided once, when the event is written (issue 3: after a
transfer, the previous rep simply stops being a recipient). Supervisors see every event and need no rows.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

EventId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only auto-increments INTEGER keys

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(120), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("permissions", JSON, nullable=False),
    Column("max_concurrent", Integer, nullable=False, default=3),
    Column("presence", String(16), nullable=False, default="offline"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Routing (migration 0002): since when the rep has been without work (ties go to the longest idle),
    # when a node last saw one of its streams open, and the presence to restore when it reconnects.
    Column("idle_since", DateTime(timezone=True), nullable=True),
    Column("last_stream_at", DateTime(timezone=True), nullable=True),
    Column("presence_before_disconnect", String(16), nullable=True),
    # The console (migration 0003_console): when this node saw the rep's last stream close (routing waits
    # until one opens again; a touch by any node with a stream open is newer and wins).
    Column("stream_closed_at", DateTime(timezone=True), nullable=True),
)

queues = Table(
    "queues",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("dispositions", JSON, nullable=True),  # wrap-up codes a rep picks from when closing (0003_console)
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("queue_id", String(40), ForeignKey("queues.id"), nullable=False),
    Column("allowed_origins", JSON, nullable=False),
    Column("pre_chat_fields", JSON, nullable=False),
    Column("business_hours", JSON, nullable=True),
    Column("identity_key", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("greeting", Text, nullable=True),
)

customers = Table(
    "customers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("deployment_id", String(40), ForeignKey("deployments.id"), nullable=False),
    Column("external_id", String(255), nullable=True),
    Column("display_name", String(120), nullable=False),
    Column("email", String(254), nullable=True),
    Column("verified", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("deployment_id", "external_id", name="uq_customers_verified_identity"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False),
    Column("deployment_id", String(40), ForeignKey("deployments.id"), nullable=False),
    Column("queue_id", String(40), ForeignKey("queues.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee_id", String(40), ForeignKey("users.id"), nullable=True),
    Column("pre_chat", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("queued_at", DateTime(timezone=True), nullable=True),
    Column("assigned_at", DateTime(timezone=True), nullable=True),
    Column("queue_position", Integer, nullable=True),
    Column("last_customer_at", DateTime(timezone=True), nullable=True),
    Column("inactivity_warned_at", DateTime(timezone=True), nullable=True),
    Column("last_staff_at", DateTime(timezone=True), nullable=True),  # 0003_console: the last staff reply
    Index("ix_conversations_customer", "customer_id", "created_at"),
    Index("ix_conversations_assignee", "assignee_id", "created_at"),
    Index("ix_conversations_created", "created_at", "id"),
)

participants = Table(
    "participants",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("participant_id", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Column("left_at", DateTime(timezone=True), nullable=True),
    Index("ix_participants_conversation", "conversation_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), nullable=True),
    Column("type", String(48), nullable=False),
    Column("client_id", String(64), nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("conversation_id", "client_id", name="uq_events_client_id"),
    Index("ix_events_conversation", "conversation_id", "id"),
    sqlite_autoincrement=True,  # never reuse an id, even if the newest event were ever deleted
)

event_recipients = Table(
    "event_recipients",
    metadata,
    Column("principal_id", String(40), primary_key=True),
    Column("event_id", EventId, primary_key=True),
)

queue_members = Table(
    "queue_members",
    metadata,
    Column("queue_id", String(40), ForeignKey("queues.id"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
)

offers = Table(
    "offers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("status", String(16), nullable=False),  # pending, accepted, declined, expired, revoked
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Index("ix_offers_conversation", "conversation_id", "status"),
    Index("ix_offers_user", "user_id", "status"),
)

used_stream_tickets = Table(
    "used_stream_tickets",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("shortcut", String(40), nullable=False),
    Column("title", String(120), nullable=False),
    Column("text", Text, nullable=False),
    Column("queue_id", String(40), ForeignKey("queues.id"), nullable=True),
    Column("owner_id", String(40), ForeignKey("users.id"), nullable=True),  # None: shared by everyone
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_canned_responses_owner", "owner_id", "shortcut"),
)
