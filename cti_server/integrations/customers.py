"""Who the caller is, for the public events: by caller ID when the call arrives, by id when the
IVR identified them (an account number, a PIN)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import get_customer, lookup_by_caller_id
from crm_core.errors import NotFound
from cti_server.integrations.events import Customer


class CustomerDirectory(Protocol):
    async def by_caller_id(self, number: str) -> Customer | None: ...
    async def by_id(self, customer_id: int) -> Customer | None: ...


class CrmCustomers:
    """The CRM as a :class:`CustomerDirectory`: exactly one match or nobody."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], region: str) -> None:
        self._sessions = sessions
        self._region = region

    async def by_caller_id(self, number: str) -> Customer | None:
        async with self._sessions() as session:
            found = await lookup_by_caller_id(session, number, self._region)
        if found.status != "found":
            return None  # several share the number: the agent chooses, not an integration
        match = found.customers[0]
        return Customer(id=match.id, name=match.name, tier=match.tier)

    async def by_id(self, customer_id: int) -> Customer | None:
        async with self._sessions() as session:
            try:
                row = await get_customer(session, customer_id)
            except NotFound:
                return None
            return Customer(id=row.id, name=row.name, tier=row.tier_override or row.tier)
