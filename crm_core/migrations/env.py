"""Alembic environment: runs on the connection handed over by crm_core.migrate."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from crm_core.models import Base, UtcDateTime


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Migrations name plain SQLAlchemy types, so old revisions never break on model edits."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through crm_core.migrate (cti crm migrate)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()
