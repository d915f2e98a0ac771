"""The customer the IVR identified (an account number, a PIN), read by id for the public events.

Who a caller ID names is not asked here: the caller identification decides it once per call
and publishes ``CustomerIdentified`` with the customer's name and tier."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import get_customer
from crm_core.errors import NotFound
from cti_server.integrations.events import Customer


class CustomerDirectory(Protocol):
    async def by_id(self, customer_id: int) -> Customer | None: ...


class CrmCustomers:
    """The CRM as a :class:`CustomerDirectory`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def by_id(self, customer_id: int) -> Customer | None:
        async with self._sessions() as session:
            try:
                row = await get_customer(session, customer_id)
            except NotFound:
                return None
            return Customer(id=row.id, name=row.name, tier=row.tier_override or row.tier)
