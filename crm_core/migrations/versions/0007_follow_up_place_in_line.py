"""follow-up place in line: a callback keeps the queue, position, join time and estimated wait

Revision ID: 3f9a2c4e7b10
Revises: 8d3b6f2a1c57
Create Date: 2026-11-23 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3f9a2c4e7b10"
down_revision = "8d3b6f2a1c57"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("queue_position", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("estimated_wait", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.drop_column("estimated_wait")
        batch_op.drop_column("joined_at")
        batch_op.drop_column("queue_position")
        batch_op.drop_column("queue")
