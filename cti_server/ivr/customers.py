"""What the IVR may ask the CRM: who is calling (the call's identification, an account number),
and their PIN."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import Customer as CustomerRow
from crm_core.pins import PinResult, check_pin, pin_locked
from cti_server.events import CallKey
from cti_server.ivr.engine import Customer, Lookup, PinCheck

CustomerOf = Callable[[CallKey, str], Awaitable[int | None]]
"""``(call, caller ID)`` → the one customer it names: the call's identification
(:meth:`cti_server.ivr.identification.CallerIdentification.customer_of`)."""


def _customer(row: CustomerRow) -> Customer:
    return Customer(
        customer_id=row.id,
        name=row.name,
        tier=row.tier,
        language=row.language,
        has_pin=row.pin_hash is not None,
        pin_locked=row.pin_hash is not None and pin_locked(row),
    )


class CrmLookup:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], customer_of: CustomerOf) -> None:
        self._sessions = sessions
        self._customer_of = customer_of

    def for_call(self, key: CallKey) -> Lookup:
        """Whom a call's caller ID names, as the IVR needs it (to greet, to offer the PIN): the
        call's identification decides who (the CRM is asked once per call, and the answer
        published for the router, the pop and the recorder); this reads the IVR's own fields."""

        async def by_caller_id(number: str) -> Customer | None:
            customer_id = await self._customer_of(key, number)
            return await self.by_id(customer_id) if customer_id is not None else None

        return by_caller_id

    async def by_id(self, customer_id: int) -> Customer | None:
        async with self._sessions() as session:
            row = await session.get(CustomerRow, customer_id)
        return _customer(row) if row is not None and row.merged_into_id is None else None

    async def by_account(self, digits: str) -> Customer | None:
        if not digits.isdigit() or len(digits) > 20:
            return None
        async with self._sessions() as session:
            row = await session.scalar(
                select(CustomerRow).where(
                    or_(
                        CustomerRow.account_number == digits,
                        CustomerRow.account_number == f"A{digits}",
                    ),
                    CustomerRow.merged_into_id.is_(None),
                )
            )
        return _customer(row) if row is not None else None

    async def verify_pin(self, customer: Customer, pin: str) -> PinCheck:
        """Checked and counted in one transaction: the count outlives the call."""
        async with self._sessions() as session, session.begin():
            result = await check_pin(session, customer.customer_id, pin)
        return _PIN_CHECKS[result]


_PIN_CHECKS = {
    PinResult.MATCH: PinCheck.MATCH,
    PinResult.WRONG: PinCheck.WRONG,
    PinResult.LOCKED: PinCheck.LOCKED,
}
