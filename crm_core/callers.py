"""Who a caller is: the one CRM rule every channel into the CRM asks (the IVR, the router, the
desk's pop, the recorder), so that each asks it the same way."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers import LookupResult, create_customer, lookup_by_caller_id
from crm_core.errors import InvalidInput
from crm_core.models import User
from crm_core.phones import is_withheld
from crm_core.schemas import CustomerIn


async def identify_caller(session: AsyncSession, number: str, region: str) -> LookupResult:
    """The customers a caller ID names: ``found`` when exactly one does (a number several
    customers share is ``ambiguous``: the agent chooses), else ``unknown`` or ``withheld``."""
    return await lookup_by_caller_id(session, number, region)


async def customer_of_caller(session: AsyncSession, number: str, region: str) -> int | None:
    """The one customer this caller ID names, else None."""
    found = await identify_caller(session, number, region)
    return found.customers[0].id if found.status == "found" else None


async def customer_for_caller(session: AsyncSession, number: str, region: str) -> int:
    """The customer with this number, or a new one: a stranger who asks for something (a
    callback, a complaint worked) needs a record to be called back on. A withheld or
    malformed number makes a customer without a phone rather than no customer."""
    known = await customer_of_caller(session, number, region)
    if known is not None:
        return known
    phones = [] if is_withheld(number) else [{"number": number}]
    try:
        data = CustomerIn.model_validate({"name": f"Caller {number}"[:200], "phones": phones})
        return (await create_customer(session, data, region)).id
    except (ValidationError, InvalidInput):
        data = CustomerIn.model_validate({"name": "Unknown caller"})
        return (await create_customer(session, data, region)).id


async def agent_for_extension(session: AsyncSession, extension: str | None) -> int | None:
    """The user who works at ``extension`` (the first made, should two share it), else None."""
    if not extension:
        return None
    user_id: int | None = await session.scalar(
        select(User.id).where(User.extension == extension).order_by(User.id).limit(1)
    )
    return user_id
