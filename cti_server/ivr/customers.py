"""What the IVR may ask the CRM: who is calling (caller ID, account number), and their PIN."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.callers import identify_caller
from crm_core.models import Customer as CustomerRow
from crm_core.pins import PinResult, check_pin, pin_locked
from cti_server.ivr.engine import Customer, PinCheck


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
    def __init__(self, sessions: async_sessionmaker[AsyncSession], region: str) -> None:
        self._sessions = sessions
        self._region = region

    async def by_caller_id(self, number: str) -> Customer | None:
        """Exactly one customer with this number, else None (several: the agent chooses). The
        IVR asks as it answers, to greet and to offer the PIN; the call's identification for
        the other parts is published by :mod:`cti_server.ivr.identification`."""
        async with self._sessions() as session:
            found = await identify_caller(session, number, self._region)
            if found.status != "found":
                return None
            row = await session.get(CustomerRow, found.customers[0].id)
        return _customer(row) if row is not None else None

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
