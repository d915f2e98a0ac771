"""interaction parties: every party the customer talked to on a call, in order (the call's chain)

Revision ID: 6e2d9a4b8c31
Revises: 4c1e8a7d5f20
Create Date: 2026-12-07 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "6e2d9a4b8c31"
down_revision = "4c1e8a7d5f20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interaction_parties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(length=120), nullable=False),
        sa.Column("extension", sa.String(length=16), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("agent_name", sa.String(length=80), nullable=True),
        sa.Column("how", sa.String(length=12), nullable=False),
        sa.Column("by_party", sa.String(length=120), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["users.id"], name=op.f("fk_interaction_parties_agent_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_interaction_parties_interaction_id_interactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction_parties")),
        sa.UniqueConstraint(
            "interaction_id", "position", name=op.f("uq_interaction_parties_interaction_id")
        ),
    )
    op.create_index(op.f("ix_interaction_parties_agent_id"), "interaction_parties", ["agent_id"])
    op.create_index(
        op.f("ix_interaction_parties_started_at"), "interaction_parties", ["started_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_interaction_parties_started_at"), table_name="interaction_parties")
    op.drop_index(op.f("ix_interaction_parties_agent_id"), table_name="interaction_parties")
    op.drop_table("interaction_parties")
