"""The router's indexes (issue 16): a queue's head, length and positions, the wallboard's last hour, the
offers to expire, each read by index instead of by scanning the conversations.

Revision ID: 0010_router
Revises: 0009_thumbnails
"""

from alembic import op

revision = "0010_router"
down_revision = "0009_thumbnails"

CONVERSATIONS = {
    "ix_conversations_queue": ["status", "queue_id", "queued_at", "created_at", "id"],
    "ix_conversations_position": ["status", "queue_id", "queue_position"],
    "ix_conversations_assigned": ["assigned_at"],
    "ix_conversations_closed": ["closed_at"],
    "ix_conversations_rated": ["rated_at", "queue_id", "rating"],
    "ix_conversations_bot": ["bot_id", "created_at"],
}


def upgrade() -> None:
    for name, columns in CONVERSATIONS.items():
        op.create_index(name, "conversations", columns)
    op.create_index("ix_offers_pending", "offers", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_offers_pending", "offers")
    for name in reversed(CONVERSATIONS):
        op.drop_index(name, "conversations")
