"""Routing: queue membership, offers, presence grace, queue positions, inactivity.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("idle_since", WHEN, nullable=True))
        users.add_column(sa.Column("last_stream_at", WHEN, nullable=True))
        users.add_column(sa.Column("presence_before_disconnect", sa.String(16), nullable=True))
    with op.batch_alter_table("deployments") as deployments:
        deployments.add_column(sa.Column("greeting", sa.Text, nullable=True))
    with op.batch_alter_table("conversations") as conversations:
        conversations.add_column(sa.Column("queued_at", WHEN, nullable=True))
        conversations.add_column(sa.Column("assigned_at", WHEN, nullable=True))
        conversations.add_column(sa.Column("queue_position", sa.Integer, nullable=True))
        conversations.add_column(sa.Column("last_customer_at", WHEN, nullable=True))
        conversations.add_column(sa.Column("inactivity_warned_at", WHEN, nullable=True))
    op.create_table(
        "queue_members",
        sa.Column("queue_id", sa.String(40), sa.ForeignKey("queues.id"), primary_key=True),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), primary_key=True),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("answered_at", WHEN, nullable=True),
    )
    op.create_index("ix_offers_conversation", "offers", ["conversation_id", "status"])
    op.create_index("ix_offers_user", "offers", ["user_id", "status"])


def downgrade() -> None:
    op.drop_table("offers")
    op.drop_table("queue_members")
    with op.batch_alter_table("conversations") as conversations:
        for column in ("inactivity_warned_at", "last_customer_at", "queue_position", "assigned_at", "queued_at"):
            conversations.drop_column(column)
    with op.batch_alter_table("deployments") as deployments:
        deployments.drop_column("greeting")
    with op.batch_alter_table("users") as users:
        for column in ("presence_before_disconnect", "last_stream_at", "idle_since"):
            users.drop_column(column)
