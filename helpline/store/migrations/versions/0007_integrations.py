"""Integrations (issue 14): webhooks and their delivery outbox, API keys, service agents (bots).

Revision ID: 0007_integrations
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_integrations"
down_revision = "0002"

WHEN = sa.DateTime(timezone=True)
EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("queues") as queues:
        queues.add_column(sa.Column("bot_user_id", sa.String(40), nullable=True))
    with op.batch_alter_table("conversations") as conversations:
        conversations.add_column(sa.Column("bot_id", sa.String(40), nullable=True))
        conversations.add_column(sa.Column("escalated_at", WHEN, nullable=True))
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", EVENT_ID, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(40), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=True),
        sa.Column("event_type", sa.String(48), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("claimed_by", sa.String(40), nullable=True),
        sa.Column("claim_expires_at", WHEN, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("last_duration_ms", sa.Integer, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("delivered_at", WHEN, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index(
        "ix_webhook_deliveries_order", "webhook_deliveries", ["webhook_id", "conversation_id", "status", "id"]
    )
    op.create_index("ix_webhook_deliveries_log", "webhook_deliveries", ["webhook_id", "id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("permissions", sa.JSON, nullable=False),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    with op.batch_alter_table("conversations") as conversations:
        conversations.drop_column("escalated_at")
        conversations.drop_column("bot_id")
    with op.batch_alter_table("queues") as queues:
        queues.drop_column("bot_user_id")
