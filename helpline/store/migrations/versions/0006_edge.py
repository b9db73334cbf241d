"""The edge (issue 13): an instance marker for demo databases; client conversation ids scoped per customer.

Revision ID: 0006_edge
Revises: 0008_retention
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_edge"
down_revision = "0008_retention"

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "instance_marks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    with op.batch_alter_table("conversations") as conversations:
        conversations.add_column(sa.Column("client_id", sa.String(64), nullable=True))
    # Until now a conversation's id was the client's id (or a generated one): it stays that customer's.
    op.execute("UPDATE conversations SET client_id = id")
    op.create_index("uq_conversations_client_id", "conversations", ["customer_id", "client_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_conversations_client_id", "conversations")
    with op.batch_alter_table("conversations") as conversations:
        conversations.drop_column("client_id")
    op.drop_table("instance_marks")
