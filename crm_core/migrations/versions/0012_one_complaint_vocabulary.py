"""one complaint vocabulary: cases and signals name their category as the detector does

The demo's seed and early hand-opened cases used their own words (``product_quality``,
``staff_attitude``, ``refund``); they become the detector's (``product``, ``staff``,
``billing``), and any other word ``other``, so lists, filters and charts count one set.

Revision ID: 9b3f1c7e2a64
Revises: 6e2d9a4b8c31
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9b3f1c7e2a64"
down_revision = "6e2d9a4b8c31"
branch_labels = None
depends_on = None

RENAMED = {"product_quality": "product", "staff_attitude": "staff", "refund": "billing"}
VOCABULARY = ("billing", "delivery", "product", "service", "staff", "other")


def upgrade() -> None:
    for table in ("complaint_cases", "complaint_signals"):
        rows = sa.table(table, sa.column("category", sa.String(40)))
        for old, new in RENAMED.items():
            op.execute(rows.update().where(rows.c.category == old).values(category=new))
        op.execute(rows.update().where(rows.c.category.not_in(VOCABULARY)).values(category="other"))


def downgrade() -> None:
    """The old words are not restored: which of them a case had is not kept."""
