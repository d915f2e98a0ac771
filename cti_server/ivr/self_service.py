"""Self-service answers the IVR reads back to an identified caller, straight from the CRM.

Each function is named in flows (``lookup`` steps) and returns attributes to set, or None when
it has no answer (a stranger, nothing on file): the flow then goes on its ``on_fail`` way.

Caller ID is not authentication: anyone can send a customer's number. Functions that read out
personal data (orders, balances) are listed in :data:`PERSONAL` and answer only a caller who
proved who they are (their PIN); for the others they raise :class:`NotVerified`, here in the
server, whichever transport asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import ComplaintCase, Transaction
from cti_server.ivr.engine import Customer, NotVerified

Answer = dict[str, str] | None
Function = Callable[[AsyncSession, Customer], Awaitable[Answer]]


async def open_cases(session: AsyncSession, customer: Customer) -> Answer:
    """How many of the caller's cases are still being worked."""
    count = await session.scalar(
        select(func.count())
        .select_from(ComplaintCase)
        .where(ComplaintCase.customer_id == customer.customer_id)
        .where(ComplaintCase.status != "closed")
    )
    return {"open_cases": str(count or 0)}


async def last_order(session: AsyncSession, customer: Customer) -> Answer:
    """The caller's latest order: its amount (whole units) and how many days ago it was."""
    row = await session.scalar(
        select(Transaction)
        .where(Transaction.customer_id == customer.customer_id, Transaction.kind == "order")
        .order_by(Transaction.at.desc())
        .limit(1)
    )
    if row is None:
        return None
    days = max(0, (datetime.now(UTC) - row.at).days)
    return {"last_order_amount": str(int(row.amount)), "last_order_days": str(days)}


FUNCTIONS: dict[str, Function] = {"open_cases": open_cases, "last_order": last_order}
# what they read out would tell a stranger about the customer: a verified caller only. A count of
# open cases says no more than the IVR's own routing does, so it serves routing for every caller.
PERSONAL = frozenset({"last_order"})


class CrmSelfService:
    """The lookup functions flows may name; callers not identified get no answer."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        functions: dict[str, Function] | None = None,
        personal: frozenset[str] = PERSONAL,
    ) -> None:
        self._sessions = sessions
        self._functions = dict(FUNCTIONS if functions is None else functions)
        self._personal = personal

    def names(self) -> set[str]:
        return set(self._functions)

    async def __call__(self, name: str, customer: Customer | None) -> Answer:
        function = self._functions.get(name)
        if function is None:
            raise KeyError(f"no IVR lookup function named {name!r}")
        if customer is None:
            return None
        if name in self._personal and not customer.verified:
            raise NotVerified(name)
        async with self._sessions() as session:
            return await function(session, customer)
