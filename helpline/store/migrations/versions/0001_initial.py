"""The initial schema.

Written out operation by operation (not ``metadata.create_all``) so that it stays the schema of
version 0001 when ``schema.py`` moves on.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(120), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("permissions", sa.JSON, nullable=False),
        sa.Column("max_concurrent", sa.Integer, nullable=False),
        sa.Column("presence", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "queues",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("queue_id", sa.String(40), sa.ForeignKey("queues.id"), nullable=False),
        sa.Column("allowed_origins", sa.JSON, nullable=False),
        sa.Column("pre_chat_fields", sa.JSON, nullable=False),
        sa.Column("business_hours", sa.JSON, nullable=True),
        sa.Column("identity_key", sa.String(255), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("deployment_id", sa.String(40), sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(120), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("deployment_id", "external_id", name="uq_customers_verified_identity"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(40), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("deployment_id", sa.String(40), sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("queue_id", sa.String(40), sa.ForeignKey("queues.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.String(40), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("pre_chat", sa.JSON, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=True),
    )
    op.create_index("ix_conversations_customer", "conversations", ["customer_id", "created_at"])
    op.create_index("ix_conversations_assignee", "conversations", ["assignee_id", "created_at"])
    op.create_index("ix_conversations_created", "conversations", ["created_at", "id"])
    op.create_table(
        "participants",
        sa.Column("id", EVENT_ID, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("joined_at", WHEN, nullable=False),
        sa.Column("left_at", WHEN, nullable=True),
    )
    op.create_index("ix_participants_conversation", "participants", ["conversation_id"])
    op.create_table(
        "events",
        sa.Column("id", EVENT_ID, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(48), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("conversation_id", "client_id", name="uq_events_client_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_conversation", "events", ["conversation_id", "id"])
    op.create_table(
        "event_recipients",
        sa.Column("principal_id", sa.String(40), primary_key=True),
        sa.Column("event_id", EVENT_ID, primary_key=True),
    )
    op.create_table(
        "used_stream_tickets",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expires_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "used_stream_tickets",
        "event_recipients",
        "events",
        "participants",
        "conversations",
        "customers",
        "deployments",
        "queues",
        "users",
    ):
        op.drop_table(table)
