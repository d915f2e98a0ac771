"""A customer's IVR PIN: stored as an argon2 hash only, checked without ever comparing clear text.

The IVR asks callers who have a PIN for it after identifying them (``identify`` with a
``pin_prompt``). Hashing costs tens of milliseconds of CPU by design, so it runs in the CRM's
argon2 pool (:func:`crm_core.people.in_hashing_pool`, bounded and at a lower priority, shared with
passwords): the event loop keeps serving the other calls meanwhile.

Wrong PINs are counted per customer, over every call, not per call: a caller who hangs up after
three tries and calls again does not get three fresh ones. After :attr:`PinLockPolicy.tries`
wrong PINs in a row the PIN locks for a while, doubling with every further wrong one; while it is
locked nothing is checked (no guessing oracle), the IVR says so and the agent's desk shows it.
A right PIN, or a new one, clears the count.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers import get_customer
from crm_core.errors import InvalidInput
from crm_core.models import Customer, utcnow
from crm_core.people import in_hashing_pool

PIN_DIGITS = (4, 12)  # fewest and most digits a PIN may have


class PinResult(StrEnum):
    MATCH = "match"
    WRONG = "wrong"
    LOCKED = "locked"  # too many wrong PINs in a row: not checked until the lock opens


@dataclass(frozen=True, slots=True)
class PinLockPolicy:
    """When a customer's PIN locks, and for how long (the card industry's usual 3-5 tries)."""

    tries: int = 5  # wrong PINs in a row, over every call, before the PIN locks
    first_lock: timedelta = timedelta(minutes=15)  # doubled by every wrong PIN after that
    longest_lock: timedelta = timedelta(hours=24)

    def lock_for(self, failures: int) -> timedelta | None:
        if failures < self.tries:
            return None
        doubled: timedelta = self.first_lock * 2 ** min(failures - self.tries, 16)
        return min(doubled, self.longest_lock)


_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Equal work when there is nothing to check (no probing); made on first use, in the
    hashing pool, not on import."""
    return _HASHER.hash("0000")


def _matches(stored: str | None, pin: str) -> bool:
    try:
        return bool(_HASHER.verify(stored or _dummy_hash(), pin))
    except (VerificationError, InvalidHashError):
        return False


def valid_pin(pin: str) -> bool:
    """Digits only (ASCII), of an allowed length."""
    return pin.isascii() and pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]


async def set_pin(session: AsyncSession, customer_id: int, pin: str | None) -> None:
    """Give the customer a PIN (``None``: remove it); the clear PIN is not kept anywhere."""
    customer = await get_customer(session, customer_id)
    customer.pin_failures = 0  # a new PIN (or none) starts a new count and opens a lock
    customer.pin_locked_until = None
    if pin is None:
        customer.pin_hash = None
    else:
        if not valid_pin(pin):
            low, high = PIN_DIGITS
            raise InvalidInput(f"pin: {low} to {high} digits")
        customer.pin_hash = await in_hashing_pool(_HASHER.hash, pin)
    await session.flush()


async def has_pin(session: AsyncSession, customer_id: int) -> bool:
    customer = await session.get(Customer, customer_id)
    return customer is not None and customer.pin_hash is not None


def pin_locked(customer: Customer, now: datetime | None = None) -> bool:
    locked = customer.pin_locked_until
    return locked is not None and locked > (now or utcnow())


async def check_pin(
    session: AsyncSession,
    customer_id: int,
    pin: str,
    policy: PinLockPolicy | None = None,
    now: datetime | None = None,
) -> PinResult:
    """Whether ``pin`` is the customer's, counting wrong ones; WRONG for a customer without a
    PIN, merged away or deleted, after the same work as a real check. Commits nothing itself:
    the caller's transaction stores the count with the answer."""
    policy = policy or PinLockPolicy()
    now = now or utcnow()
    customer = await session.get(Customer, customer_id)
    usable = (
        customer is not None
        and customer.pin_hash is not None
        and customer.merged_into_id is None
        and customer.deleted_at is None
    )
    if customer is not None and usable and pin_locked(customer, now):
        return PinResult.LOCKED
    stored = customer.pin_hash if usable and customer is not None else None
    matches = await in_hashing_pool(_matches, stored, pin)
    if matches and stored is not None and valid_pin(pin):
        await session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(pin_failures=0, pin_locked_until=None)
        )
        return PinResult.MATCH
    if stored is not None:  # counted in the database: two calls at once both count
        failures = await session.scalar(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(pin_failures=Customer.pin_failures + 1)
            .returning(Customer.pin_failures)
        )
        lock = policy.lock_for(int(failures or 0))
        if lock is not None:
            await session.execute(
                update(Customer)
                .where(Customer.id == customer_id)
                .values(pin_locked_until=now + lock)
            )
    return PinResult.WRONG
