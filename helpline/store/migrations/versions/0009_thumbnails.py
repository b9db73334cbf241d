"""Thumbnails of image attachments (issue 12): their type and, where the file's bytes are, their bytes.

Revision ID: 0009_thumbnails
Revises: 0003_console
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_thumbnails"
down_revision = "0003_console"


def upgrade() -> None:
    with op.batch_alter_table("attachments") as attachments:
        attachments.add_column(sa.Column("thumbnail_type", sa.String(100), nullable=True))
        attachments.add_column(sa.Column("thumbnail", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as attachments:
        attachments.drop_column("thumbnail")
        attachments.drop_column("thumbnail_type")
