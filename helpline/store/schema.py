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
    LargeBinary,
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
    Column("presence_since", DateTime(timezone=True), nullable=True),  # the wallboard's time in status
)

queues = Table(
    "queues",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("dispositions", JSON, nullable=True),  # wrap-up codes a rep picks from when closing (0003_console)
    # Service agents (migration 0007): a bot user that takes every new conversation first.
    Column("bot_user_id", String(40), nullable=True),
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
    # Attachments (migration 0005): a lower limit than the server's, a narrower list of types; None: the server's.
    Column("attachment_max_bytes", BigInteger, nullable=True),
    Column("attachment_types", JSON, nullable=True),
    # Retention (migration 0008): conversations idle longer than this many days are removed; None keeps them.
    Column("retention_days", Integer, nullable=True),
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
    # Offline continuity (migration 0005): when a node last saw a stream of this customer open.
    Column("last_stream_at", DateTime(timezone=True), nullable=True),
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
    # Satisfaction (migration 0005): the customer's 1-5 score after close, for the queue averages.
    Column("rating", Integer, nullable=True),
    Column("rated_at", DateTime(timezone=True), nullable=True),
    # Service agents (migration 0007): the bot that handled it first, and when it went to a person.
    Column("bot_id", String(40), nullable=True),
    Column("escalated_at", DateTime(timezone=True), nullable=True),
    # The id the customer's client chose (an idempotency key), unique per customer only (issue 13).
    Column("client_id", String(64), nullable=True),
    Index("ix_conversations_customer", "customer_id", "created_at"),
    Index("uq_conversations_client_id", "customer_id", "client_id", unique=True),
    Index("ix_conversations_assignee", "assignee_id", "created_at"),
    Index("ix_conversations_created", "created_at", "id"),
    Index("ix_conversations_deployment_updated", "deployment_id", "updated_at"),
    # The router's and the wallboard's (migration 0010): a queue's head first come first served, its
    # length and positions, each read by index, never by loading the queue (issue 16).
    Index("ix_conversations_queue", "status", "queue_id", "queued_at", "created_at", "id"),
    Index("ix_conversations_position", "status", "queue_id", "queue_position"),
    Index("ix_conversations_assigned", "assigned_at"),
    Index("ix_conversations_closed", "closed_at"),
    Index("ix_conversations_rated", "rated_at", "queue_id", "rating"),
    Index("ix_conversations_bot", "bot_id", "created_at"),
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
    Index("ix_offers_pending", "status", "expires_at"),  # migration 0010: the offers to expire
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

# Files sent in a conversation (migration 0005). ``content`` holds the bytes when the store keeps them in
# the database (PostgreSQL's default); on disk it is NULL. ``message_event_id`` is the message that
# carries the file: until then only its uploader may see it, and it can be sent only once.
attachments = Table(
    "attachments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("uploader_id", String(40), nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage", String(16), nullable=False),  # database | disk
    Column("content", LargeBinary, nullable=True),
    Column("message_event_id", EventId, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # An image's thumbnail (migration 0009): its type, NULL for other files (and images stored before),
    # and its bytes where ``content`` keeps the file's (on disk: ``<id>_thumb`` beside the file).
    Column("thumbnail_type", String(100), nullable=True),
    Column("thumbnail", LargeBinary, nullable=True),
    Index("ix_attachments_conversation", "conversation_id"),
)

# The durable outbox of email (migration 0005): written in the transaction of what triggers it, sent by
# the worker of domain/outbox.py, which claims rows with a lease (``locked_until``) so that two nodes
# never send one row twice, and retries failures with backoff (``next_attempt_at``).
email_outbox = Table(
    "email_outbox",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # reply | transcript
    Column("conversation_id", String(64), nullable=True),
    Column("recipient", String(254), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Index("ix_email_outbox_due", "status", "next_attempt_at"),
    Index("ix_email_outbox_conversation", "conversation_id", "kind", "status"),
)

# -- integrations (migration 0007, issue 14) ------------------------------------------------------
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("events", JSON, nullable=False),  # event types; ["*"] for every stored type
    Column("secret", String(128), nullable=False),  # the HMAC key: kept, since every delivery is signed with it
    Column("enabled", Boolean, nullable=False, default=True),
    Column("paused", Boolean, nullable=False, default=False),  # set after repeated failures; cleared on re-enable
    Column("failures", Integer, nullable=False, default=0),  # failed attempts in a row
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The outbox and the delivery log in one: a row per (endpoint, event), written in the event's own
# transaction. ``status`` is pending (waiting or in flight), delivered or failed (given up).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(40), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", EventId, nullable=True),  # None for a test event, whose body is in ``payload``
    Column("event_type", String(48), nullable=False),
    Column("conversation_id", String(64), nullable=True),  # deliveries of one conversation go in order
    Column("payload", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(40), nullable=True),
    Column("claim_expires_at", DateTime(timezone=True), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("last_duration_ms", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_order", "webhook_id", "conversation_id", "status", "id"),
    Index("ix_webhook_deliveries_log", "webhook_id", "id"),
    sqlite_autoincrement=True,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # HMAC-SHA256 of the key, keyed by the secret
    Column("prefix", String(16), nullable=False),  # the key's first characters, to recognise it in lists
    Column("permissions", JSON, nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=True),  # acts as this user (a bot), if set
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# -- retention and erasure (migration 0008, issue 15) ----------------------------------------------
# One row: events with ids up to ``horizon`` may have been removed (retention, erasure), so a resume from
# before it gets ``stream.reset`` rather than a silent gap.
log_state = Table(
    "log_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("horizon", EventId, nullable=False),
)

# The audit of ``helpline customers erase``: who was erased, when, by whom, how much; never the content.
erasures = Table(
    "erasures",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_id", String(40), nullable=False),
    Column("deployment_id", String(40), nullable=True),
    Column("conversations", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("attachments", Integer, nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

# What this database is: ``demo`` marks one that ``--demo`` created (and may therefore reseed).
instance_marks = Table(
    "instance_marks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
