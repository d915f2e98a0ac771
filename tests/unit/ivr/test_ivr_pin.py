"""The PIN check in ``identify``: asked only of customers who have a PIN, a secret everywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from crm_core.customers import create_customer
from crm_core.errors import InvalidInput
from crm_core.models import Customer as CustomerRow
from crm_core.pins import PinResult, check_pin, set_pin
from crm_core.schemas import CustomerIn
from cti_server.ivr.engine import MASK, CallerGone, Customer, IvrEngine, IvrResult, PinCheck
from cti_server.ivr.flow import Flow
from tests.support.blank_crm import blank_crm
from tests.support.ivr_script import (
    ACCOUNT,
    NO_LANGUAGE,
    UNKNOWN_NUMBER,
    VIP,
    VIP_NUMBER,
    ScriptedChannel,
    crm_lookup,
    each_call,
    steps,
)

PIN = "4711"
VIP_WITH_PIN = dataclasses.replace(VIP, has_pin=True)
HOLDER_WITH_PIN = Customer(
    customer_id=7, name="Ann Lee", tier="silver", language=None, has_pin=True
)


class PinCrm:
    """Customers who have a PIN (4711); records every PIN it was asked to check."""

    def __init__(self) -> None:
        self.checked: list[tuple[int, str]] = []

    async def by_caller_id(self, number: str) -> Customer | None:
        return VIP_WITH_PIN if number == VIP_NUMBER else None

    async def by_account(self, digits: str) -> Customer | None:
        return HOLDER_WITH_PIN if digits == ACCOUNT else None

    async def verify_pin(self, customer: Customer, pin: str) -> PinCheck:
        self.checked.append((customer.customer_id, pin))
        return PinCheck.MATCH if pin == PIN else PinCheck.WRONG

    def engine(self) -> IvrEngine:
        return IvrEngine(self.by_caller_id, self.by_account, verify_pin=self.verify_pin)


def _nowhere(result: IvrResult, secret: str) -> None:
    """The PIN is in nothing the IVR publishes or stores."""
    assert secret not in repr(result.path)
    assert secret not in repr(result.inputs)
    assert secret not in repr(result.attributes)


@pytest.mark.asyncio
async def test_a_customer_with_a_pin_is_identified_only_after_typing_it(main_flow: Flow) -> None:
    crm = PinCrm()
    channel = ScriptedChannel([PIN, "1"])
    result = await crm.engine().run(main_flow, channel, VIP_NUMBER)

    assert channel.calls[0] == "read_digits enter_pin zh 6 8.0"  # the customer's language
    assert crm.checked == [(42, PIN)]
    assert result.customer == dataclasses.replace(VIP_WITH_PIN, verified=True)
    assert result.attributes["tier"] == "platinum"
    assert result.attributes["pin_verified"] == "yes"
    assert result.path[0].input == "caller id, pin verified"
    assert result.inputs == {"pin": MASK}
    assert steps(result)[:3] == ["identify", "opening_hours", "welcome"]
    _nowhere(result, PIN)


@pytest.mark.asyncio
async def test_wrong_pins_lead_to_not_verified_as_a_stranger(main_flow: Flow) -> None:
    crm = PinCrm()
    channel = ScriptedChannel(["1111", "2222", "3333", "0"])
    result = await crm.engine().run(main_flow, channel, VIP_NUMBER)

    assert [pin for _, pin in crm.checked] == ["1111", "2222", "3333"]
    assert channel.calls.count("play wrong_pin zh ''") == 2  # between tries, not after the last
    assert result.customer is None
    assert "tier" not in result.attributes
    assert result.attributes["pin_verified"] == "no"
    assert result.path[0].input == "caller id, pin not verified"
    assert steps(result)[:4] == ["identify", "pin_failed", "opening_hours", "welcome"]
    assert result.attributes["intent"] == "operator"
    for pin in ("1111", "2222", "3333"):
        _nowhere(result, pin)


@pytest.mark.asyncio
async def test_a_second_try_may_be_right(main_flow: Flow) -> None:
    crm = PinCrm()
    result = await crm.engine().run(main_flow, ScriptedChannel(["9999", PIN, "1"]), VIP_NUMBER)
    assert result.customer == dataclasses.replace(VIP_WITH_PIN, verified=True)
    assert result.attributes["intent"] == "billing"


@pytest.mark.parametrize(
    "typed",
    ["9" * 100, "#*" * 50, "12", "", "١٢٣٤"],
    ids=["100", "flood", "short", "none", "arabic"],
)
@pytest.mark.asyncio
async def test_malformed_pins_are_never_checked(main_flow: Flow, typed: str) -> None:
    crm = PinCrm()
    channel = ScriptedChannel([typed, typed, typed, "0"])
    result = await crm.engine().run(main_flow, channel, VIP_NUMBER)
    assert crm.checked == []
    assert steps(result)[:2] == ["identify", "pin_failed"]


@pytest.mark.asyncio
async def test_an_account_holder_with_a_pin_is_asked_after_the_account(main_flow: Flow) -> None:
    crm = PinCrm()
    channel = ScriptedChannel([*NO_LANGUAGE, ACCOUNT, PIN, "0"])
    result = await crm.engine().run(main_flow, channel, UNKNOWN_NUMBER)

    assert [c.split(" ")[1] for c in channel.calls if c.startswith("read_digits")] == [
        "enter_account",
        "enter_pin",
    ]
    assert result.customer == dataclasses.replace(HOLDER_WITH_PIN, verified=True)
    assert result.inputs == {"account": ACCOUNT, "pin": MASK}
    assert result.path[2].input == f"account {ACCOUNT}, pin verified"


@pytest.mark.asyncio
async def test_customers_without_a_pin_are_not_asked(main_flow: Flow) -> None:
    crm = PinCrm()
    engine = IvrEngine(lambda n: _plain(), crm.by_account, verify_pin=crm.verify_pin)
    channel = ScriptedChannel(["1"])
    result = await engine.run(main_flow, channel, VIP_NUMBER)
    assert not any("enter_pin" in call for call in channel.calls)
    assert "pin_verified" not in result.attributes
    assert result.customer == VIP


async def _plain() -> Customer:
    return VIP


@pytest.mark.asyncio
async def test_a_server_without_a_pin_check_verifies_nobody(main_flow: Flow) -> None:
    crm = PinCrm()
    engine = IvrEngine(crm.by_caller_id, crm.by_account)
    result = await engine.run(main_flow, ScriptedChannel(["0"]), VIP_NUMBER)
    assert result.customer is None
    assert steps(result)[:2] == ["identify", "pin_failed"]


@pytest.mark.asyncio
async def test_hanging_up_during_the_pin_keeps_the_step(main_flow: Flow) -> None:
    crm = PinCrm()
    channel = ScriptedChannel(["1111", CallerGone("hung up")])
    result = await crm.engine().run(main_flow, channel, VIP_NUMBER)
    assert result.outcome == "caller_gone"
    assert steps(result) == ["identify"]
    assert result.customer is None
    _nowhere(result, "1111")


@pytest.mark.asyncio
async def test_the_crm_keeps_only_a_hash_and_checks_pins_against_it(tmp_path: Path) -> None:
    async with blank_crm(tmp_path) as sessions:
        async with sessions() as session, session.begin():
            data = {"name": "Ann", "phones": [{"number": VIP_NUMBER}], "account_number": "A77"}
            ann = await create_customer(session, CustomerIn.model_validate(data), "CN")
            with pytest.raises(InvalidInput):
                await set_pin(session, ann.id, "12")
            await set_pin(session, ann.id, PIN)
        async with sessions() as session:
            stored = await session.get(CustomerRow, ann.id)
            assert stored is not None
            assert stored.pin_hash is not None
            assert PIN not in stored.pin_hash
            assert stored.pin_hash.startswith("$argon2")
            assert await check_pin(session, ann.id, PIN) is PinResult.MATCH
            assert await check_pin(session, ann.id, "4712") is PinResult.WRONG
            assert await check_pin(session, ann.id + 1, PIN) is PinResult.WRONG  # nobody
        lookup = crm_lookup(sessions)
        by_phone = await each_call(lookup)(VIP_NUMBER)
        by_account = await lookup.by_account("77")
        assert by_phone is not None
        assert by_phone.has_pin
        assert by_account is not None
        assert by_account.has_pin
        assert await lookup.verify_pin(by_phone, PIN) is PinCheck.MATCH
        async with sessions() as session, session.begin():
            await set_pin(session, ann.id, None)
        again = await each_call(lookup)(VIP_NUMBER)
        assert again is not None
        assert not again.has_pin
        assert await lookup.verify_pin(again, PIN) is PinCheck.WRONG
