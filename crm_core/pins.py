"""A customer's IVR PIN: stored as an argon2 hash only, checked without ever comparing clear text.

The IVR asks callers who have a PIN for it after identifying them (``identify`` with a
``pin_prompt``). Hashing costs tens of milliseconds of CPU by design, so it runs in a worker
thread: the event loop keeps serving the other calls meanwhile.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers import get_customer
from crm_core.errors import InvalidInput
from crm_core.models import Customer

PIN_DIGITS = (4, 12)  # fewest and most digits a PIN may have
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("0000")  # equal work when there is nothing to check (no probing)


def valid_pin(pin: str) -> bool:
    """Digits only (ASCII), of an allowed length."""
    return pin.isascii() and pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]


async def set_pin(session: AsyncSession, customer_id: int, pin: str | None) -> None:
    """Give the customer a PIN (``None``: remove it); the clear PIN is not kept anywhere."""
    customer = await get_customer(session, customer_id)
    if pin is None:
        customer.pin_hash = None
    else:
        if not valid_pin(pin):
            low, high = PIN_DIGITS
            raise InvalidInput(f"pin: {low} to {high} digits")
        customer.pin_hash = await asyncio.to_thread(_HASHER.hash, pin)
    await session.flush()


async def has_pin(session: AsyncSession, customer_id: int) -> bool:
    customer = await session.get(Customer, customer_id)
    return customer is not None and customer.pin_hash is not None


async def verify_pin(session: AsyncSession, customer_id: int, pin: str) -> bool:
    """Whether ``pin`` is the customer's; False for a customer without one, merged away or
    deleted, after the same work as a real check."""
    customer = await session.get(Customer, customer_id)
    usable = (
        customer is not None
        and customer.pin_hash is not None
        and customer.merged_into_id is None
        and customer.deleted_at is None
    )
    stored = customer.pin_hash if usable and customer is not None else None
    try:
        matches = await asyncio.to_thread(_HASHER.verify, stored or _DUMMY_HASH, pin)
    except (VerificationError, InvalidHashError):
        return False
    return bool(matches) and stored is not None and valid_pin(pin)
