"""The console: canned responses, wrap-up dispositions per queue, when a rep's last stream closed, and
when staff last wrote in a conversation (so the console shows how long a customer has been waiting).

Revision ID: 0003_console
Revises: 0006_edge
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_console"
down_revision = "0006_edge"

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("stream_closed_at", WHEN, nullable=True))
        users.add_column(sa.Column("presence_since", WHEN, nullable=True))
    with op.batch_alter_table("queues") as queues:
        queues.add_column(sa.Column("dispositions", sa.JSON, nullable=True))
    with op.batch_alter_table("conversations") as conversations:
        conversations.add_column(sa.Column("last_staff_at", WHEN, nullable=True))
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("shortcut", sa.String(40), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("queue_id", sa.String(40), sa.ForeignKey("queues.id"), nullable=True),
        sa.Column("owner_id", sa.String(40), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_canned_responses_owner", "canned_responses", ["owner_id", "shortcut"])


def downgrade() -> None:
    op.drop_table("canned_responses")
    with op.batch_alter_table("conversations") as conversations:
        conversations.drop_column("last_staff_at")
    with op.batch_alter_table("queues") as queues:
        queues.drop_column("dispositions")
    with op.batch_alter_table("users") as users:
        users.drop_column("presence_since")
        users.drop_column("stream_closed_at")
