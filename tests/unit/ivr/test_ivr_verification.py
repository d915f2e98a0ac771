"""Caller ID names a customer, it does not prove who calls: personal data is read out only to a
caller who typed their PIN, and wrong PINs are counted per customer over every call, with a lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer
from crm_core.models import Customer as CustomerRow
from crm_core.pins import PinLockPolicy, PinResult, check_pin, set_pin
from crm_core.schemas import CustomerIn, TransactionIn
from crm_core.valuation import add_transaction
from crm_core.value import ValuePolicy
from cti_server.ivr.engine import IvrEngine, NotVerified
from cti_server.ivr.flow import Flow
from cti_server.ivr.self_service import CrmSelfService
from tests.support.ivr_script import ScriptedChannel, crm_lookup, each_call, steps

Sessions = async_sessionmaker[AsyncSession]
NUMBER = "+8613800138000"
PIN = "4711"
WRONG = "1111"


@pytest_asyncio.fixture
async def customer(crm: Sessions) -> tuple[Sessions, int]:
    """The CRM (SQLite, then PostgreSQL) with one customer who has a PIN and an order."""
    async with crm() as session, session.begin():
        data = {"name": "Wang Fang", "phones": [{"number": NUMBER}], "language": "en"}
        row = await create_customer(session, CustomerIn.model_validate(data), "CN")
        await set_pin(session, row.id, PIN)
        order = TransactionIn(amount=Decimal("1250"), at=datetime.now(UTC) - timedelta(days=3))
        await add_transaction(session, row.id, order, ValuePolicy())
    return crm, row.id


async def _check(sessions: Sessions, customer_id: int, pin: str, now: datetime) -> PinResult:
    async with sessions() as session, session.begin():
        return await check_pin(session, customer_id, pin, now=now)


async def _row(sessions: Sessions, customer_id: int) -> CustomerRow:
    async with sessions() as session:
        row = await session.get(CustomerRow, customer_id)
    assert row is not None
    return row


@pytest.mark.asyncio
async def test_wrong_pins_lock_the_pin_whatever_is_typed_until_the_lock_opens(
    customer: tuple[Sessions, int],
) -> None:
    sessions, customer_id = customer
    now = datetime.now(UTC)
    policy = PinLockPolicy()
    for _ in range(policy.tries):
        assert await _check(sessions, customer_id, WRONG, now) is PinResult.WRONG
    # locked: even the right PIN is not checked (no guessing while locked)
    assert await _check(sessions, customer_id, PIN, now) is PinResult.LOCKED
    row = await _row(sessions, customer_id)
    assert row.pin_failures == policy.tries
    assert row.pin_locked_until == now + policy.first_lock
    # the lock opens; one more wrong PIN locks it again, for twice as long
    later = now + policy.first_lock + timedelta(seconds=1)
    assert await _check(sessions, customer_id, WRONG, later) is PinResult.WRONG
    assert (await _row(sessions, customer_id)).pin_locked_until == later + 2 * policy.first_lock
    # the right PIN once the lock is open clears the count
    open_again = later + 2 * policy.first_lock + timedelta(seconds=1)
    assert await _check(sessions, customer_id, PIN, open_again) is PinResult.MATCH
    row = await _row(sessions, customer_id)
    assert (row.pin_failures, row.pin_locked_until) == (0, None)


@pytest.mark.asyncio
async def test_a_new_pin_opens_the_lock(customer: tuple[Sessions, int]) -> None:
    sessions, customer_id = customer
    now = datetime.now(UTC)
    for _ in range(PinLockPolicy().tries):
        await _check(sessions, customer_id, WRONG, now)
    async with sessions() as session, session.begin():
        await set_pin(session, customer_id, "8642")
    assert await _check(sessions, customer_id, "8642", now) is PinResult.MATCH


def test_the_lock_doubles_up_to_a_day() -> None:
    policy = PinLockPolicy(tries=3, first_lock=timedelta(minutes=15))
    assert policy.lock_for(2) is None
    assert policy.lock_for(3) == timedelta(minutes=15)
    assert policy.lock_for(4) == timedelta(minutes=30)
    assert policy.lock_for(40) == timedelta(hours=24)


@pytest.mark.asyncio
async def test_tries_count_over_calls_and_a_locked_pin_is_not_asked(
    customer: tuple[Sessions, int], main_flow: Flow
) -> None:
    """Three wrong PINs, hang-up-free: the caller is served as unknown. Calling again gives two
    more tries, not three: the fifth wrong one locks the PIN and the third try of that call is
    not checked. A third call is not asked at all; the lock is on the call for the desk."""
    sessions, customer_id = customer
    lookup = crm_lookup(sessions)
    engine = IvrEngine(each_call(lookup), lookup.by_account, verify_pin=lookup.verify_pin)

    first = await engine.run(main_flow, ScriptedChannel([WRONG, WRONG, WRONG, "0"]), NUMBER)
    assert first.path[0].input == "caller id, pin not verified"
    assert first.customer is None

    second = await engine.run(main_flow, ScriptedChannel([WRONG, WRONG, PIN, "0"]), NUMBER)
    assert second.path[0].input == "caller id, pin locked"
    assert second.attributes["pin_locked"] == "yes"
    assert second.customer is None
    assert (await _row(sessions, customer_id)).pin_failures == 5

    channel = ScriptedChannel(["0"])
    third = await engine.run(main_flow, channel, NUMBER)
    assert not any("enter_pin" in call for call in channel.calls)
    assert third.path[0].input == "caller id, pin locked"
    assert steps(third)[:2] == ["identify", "pin_failed"]


@pytest.mark.asyncio
async def test_the_last_order_is_read_only_to_a_caller_who_typed_the_pin(
    customer: tuple[Sessions, int], main_flow: Flow
) -> None:
    sessions, _ = customer
    lookup = crm_lookup(sessions)
    service = CrmSelfService(sessions)
    engine = IvrEngine(each_call(lookup), lookup.by_account, service, verify_pin=lookup.verify_pin)
    channel = ScriptedChannel([PIN, "3", "0"])  # the PIN, the last order, then the operator
    result = await engine.run(main_flow, channel, NUMBER)
    assert result.attributes["verified"] == "pin"
    assert steps(result)[3:8] == ["menu", "last_order", "say_amount", "say_days", "menu"]
    assert "say number 1250 en" in channel.calls


@pytest.mark.asyncio
async def test_caller_id_alone_hears_no_order(
    customer: tuple[Sessions, int], main_flow: Flow
) -> None:
    """A spoofed number of a customer without a PIN: identified for routing and the pop, but
    the IVR reads out nothing personal."""
    sessions, customer_id = customer
    async with sessions() as session, session.begin():
        await set_pin(session, customer_id, None)
    lookup = crm_lookup(sessions)
    service = CrmSelfService(sessions)
    engine = IvrEngine(each_call(lookup), lookup.by_account, service)
    channel = ScriptedChannel(["3", "0"])
    result = await engine.run(main_flow, channel, NUMBER)
    assert result.customer is not None
    assert result.attributes["verified"] == "no"
    assert steps(result)[3:7] == ["menu", "last_order", "order_needs_pin", "menu"]
    assert result.path[4].input == "not verified"
    assert not any(call.startswith("say") for call in channel.calls)
    assert "1250" not in repr(result.attributes)
    # the server refuses it whichever transport asks; what is no personal data still answers
    assert result.customer is not None
    with pytest.raises(NotVerified):
        await service("last_order", result.customer)
    assert await service("open_cases", result.customer) == {"open_cases": "0"}
