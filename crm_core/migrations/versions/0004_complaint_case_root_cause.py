"""complaint case root cause

Revision ID: a454b61b65ef
Revises: 381ae4e6470f
Create Date: 2026-11-23 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a454b61b65ef"
down_revision = "381ae4e6470f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("complaint_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("root_cause", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("complaint_cases", schema=None) as batch_op:
        batch_op.drop_column("root_cause")
