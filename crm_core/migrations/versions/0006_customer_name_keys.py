"""customer name keys: the duplicate search's blocking keys, stored and indexed

Revision ID: 8d3b6f2a1c57
Revises: 5c1e0d7a9b42
Create Date: 2026-11-23 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crm_core.dedup import name_keys

revision = "8d3b6f2a1c57"
down_revision = "5c1e0d7a9b42"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    keys = op.create_table(
        "customer_name_keys",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_name_keys_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "key", name=op.f("pk_customer_name_keys")),
    )
    op.create_index(op.f("ix_customer_name_keys_key"), "customer_name_keys", ["key"])
    _backfill(keys)


def _backfill(keys: sa.Table) -> None:
    """Keys of the customers already stored, read and written in batches by id."""
    connection = op.get_bind()
    customers = sa.table(
        "customers", sa.column("id", sa.Integer), sa.column("kind"), sa.column("name")
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(customers.c.id, customers.c.kind, customers.c.name)
            .where(customers.c.id > last)
            .order_by(customers.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        values = [
            {"customer_id": customer_id, "key": key}
            for customer_id, kind, name in rows
            if kind in ("person", "organisation")
            for key in sorted(name_keys(name, kind))
        ]
        if values:
            connection.execute(sa.insert(keys), values)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_name_keys_key"), table_name="customer_name_keys")
    op.drop_table("customer_name_keys")
