"""The customer's side: attachments, satisfaction ratings, the email outbox, customers' last stream.

Revision ID: 0005_customer_side
Revises: 0007_integrations
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_customer_side"
down_revision = "0007_integrations"

WHEN = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as deployments:
        deployments.add_column(sa.Column("attachment_max_bytes", sa.BigInteger, nullable=True))
        deployments.add_column(sa.Column("attachment_types", sa.JSON, nullable=True))
    with op.batch_alter_table("customers") as customers:
        customers.add_column(sa.Column("last_stream_at", WHEN, nullable=True))
    with op.batch_alter_table("conversations") as conversations:
        conversations.add_column(sa.Column("rating", sa.Integer, nullable=True))
        conversations.add_column(sa.Column("rated_at", WHEN, nullable=True))
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("uploader_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage", sa.String(16), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
        sa.Column("message_event_id", ROW_ID, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_attachments_conversation", "attachments", ["conversation_id"])
    op.create_table(
        "email_outbox",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("locked_until", WHEN, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
    )
    op.create_index("ix_email_outbox_due", "email_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_email_outbox_conversation", "email_outbox", ["conversation_id", "kind", "status"])


def downgrade() -> None:
    op.drop_table("email_outbox")
    op.drop_table("attachments")
    with op.batch_alter_table("conversations") as conversations:
        conversations.drop_column("rated_at")
        conversations.drop_column("rating")
    with op.batch_alter_table("customers") as customers:
        customers.drop_column("last_stream_at")
    with op.batch_alter_table("deployments") as deployments:
        deployments.drop_column("attachment_types")
        deployments.drop_column("attachment_max_bytes")
