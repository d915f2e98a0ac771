"""interaction quality: how the call sounded to each browser phone on it, by extension

Revision ID: 5d8e2f0a7c13
Revises: 9b3f1c7e2a64
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5d8e2f0a7c13"
down_revision = "9b3f1c7e2a64"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("quality", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("quality")
