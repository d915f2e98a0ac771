"""The CRM's interactions that reached a queue, read for a forecast (one query, no writes)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm_core.models import Interaction
from cti_server.staffing.history import Contact, from_interactions


async def contacts_since(engine: AsyncEngine, since: datetime, zone: tzinfo) -> list[Contact]:
    """Every interaction with a queue that arrived from ``since`` (aware) on, at local times."""
    query = select(Interaction).where(
        Interaction.queue.is_not(None), Interaction.arrived_at >= since
    )
    async with AsyncSession(engine) as session:
        rows = (await session.scalars(query)).all()
    return list(from_interactions(rows, zone))
