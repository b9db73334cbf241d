"""Retention and erasure (issue 15): per-deployment retention, the log's resume horizon, the erasure audit.

Revision ID: 0008_retention
Revises: 0005_customer_side
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_retention"
down_revision = "0005_customer_side"

WHEN = sa.DateTime(timezone=True)
EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as deployments:
        deployments.add_column(sa.Column("retention_days", sa.Integer, nullable=True))
    log_state = op.create_table(
        "log_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("horizon", EVENT_ID, nullable=False),
    )
    op.bulk_insert(log_state, [{"id": 1, "horizon": 0}])
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("deployment_id", sa.String(40), nullable=True),
        sa.Column("conversations", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("attachments", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("erased_at", WHEN, nullable=False),
    )
    op.create_index("ix_conversations_deployment_updated", "conversations", ["deployment_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_deployment_updated", "conversations")
    op.drop_table("erasures")
    op.drop_table("log_state")
    with op.batch_alter_table("deployments") as deployments:
        deployments.drop_column("retention_days")
