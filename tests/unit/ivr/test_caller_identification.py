"""Each call's customer is asked of the CRM once and published (CustomerIdentified): by caller
ID, or by the IVR, which wins; strangers, shared numbers and hostile caller IDs included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.callers import identify_caller
from crm_core.customers import LookupResult
from cti_server.bus import MemoryBus
from cti_server.events import (
    AgentRinging,
    CallKey,
    CallStarted,
    CustomerIdentified,
    DomainEvent,
    IdentifiedBy,
    event_from_dict,
)
from cti_server.ivr import identification as identification_module
from cti_server.ivr.customers import CrmLookup
from cti_server.ivr.identification import CallerIdentification
from tests.support import domain_events as make
from tests.support.blank_crm import Sessions, add_customer, blank_crm

NODE = "pbx1"
NUMBER = "+8613800138000"


@pytest_asyncio.fixture
async def crm(tmp_path: Path) -> AsyncIterator[Sessions]:
    async with blank_crm(tmp_path) as sessions:
        yield sessions


async def _customer(crm: Sessions, name: str, number: str = NUMBER) -> int:
    return await add_customer(crm, name, number)


def _ringing(linkedid: str) -> AgentRinging:
    return replace(make.ringing(linkedid, "agent-1001"), caller_number=NUMBER)


async def _identified(crm: Sessions, *events: DomainEvent) -> list[CustomerIdentified]:
    bus = MemoryBus()
    heard: list[DomainEvent] = []
    bus.listen((CustomerIdentified,), heard.append)
    identification = CallerIdentification(crm, "CN")
    identification.subscribe(bus)
    for event in events:
        bus.publish(event)
    await identification.settled()
    await identification.close()
    return [e for e in heard if isinstance(e, CustomerIdentified)]


@pytest.mark.asyncio
async def test_a_known_caller_is_identified_once_however_many_events_show_the_number(
    crm: Sessions,
) -> None:
    known = await _customer(crm, "Li Na")
    started = CallStarted(
        node=NODE, linkedid="1.1", caller_number=NUMBER, caller_name="", dialed="600"
    )
    ringing = _ringing("1.1")
    found = await _identified(crm, started, make.arrived("1.1", "13800138000"), ringing)
    assert [(e.linkedid, e.customer_id, e.by, e.lookup) for e in found] == [
        ("1.1", known, IdentifiedBy.CALLER_ID, "found")
    ]
    assert found[0].number == NUMBER
    assert found[0].matches == [known]
    assert (found[0].name, found[0].tier) == ("Li Na", "standard")  # who, for whoever shows it


@pytest.mark.asyncio
async def test_a_call_that_shows_its_number_late_is_identified_when_it_does(
    crm: Sessions,
) -> None:
    known = await _customer(crm, "Li Na")
    local = CallStarted(node=NODE, linkedid="2.1", caller_number="", caller_name="", dialed="")
    ringing = _ringing("2.1")
    found = await _identified(crm, local, ringing)
    assert [e.customer_id for e in found] == [known]


@pytest.mark.asyncio
async def test_a_number_several_customers_share_names_them_all_and_nobody(
    crm: Sessions,
) -> None:
    first = await _customer(crm, "Li Na")
    second = await _customer(crm, "Li Lei")
    found = await _identified(crm, make.arrived("3.1", NUMBER))
    assert [(e.customer_id, e.lookup, e.matches) for e in found] == [
        (None, "ambiguous", [first, second])
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "number",
    ["+8613900139000", "anonymous", "'; DROP TABLE customers; --", "\u202e" + "9" * 5000],
)
async def test_a_stranger_or_a_hostile_caller_id_is_published_as_nobody(
    crm: Sessions, number: str
) -> None:
    await _customer(crm, "Li Na")
    found = await _identified(crm, make.arrived("4.1", number))
    assert [(e.customer_id, e.lookup, e.matches) for e in found] == [(None, "unknown", [])]
    assert found[0].caller_number == number


@pytest.mark.asyncio
async def test_the_ivr_identifying_the_caller_wins_over_the_caller_id(crm: Sessions) -> None:
    """The IVR's answer (an account number, a PIN) comes before the caller ID's: the caller
    ID's, still on its way, is not published after it."""
    await _customer(crm, "Li Na")
    account_holder = await _customer(crm, "Wang Wei", "+8613700137000")
    found = await _identified(
        crm, make.arrived("5.1", NUMBER), make.ivr_finished("5.1", account_holder)
    )
    assert [(e.customer_id, e.by) for e in found] == [(account_holder, IdentifiedBy.IVR)]


@pytest.mark.asyncio
async def test_an_ivr_that_identified_nobody_leaves_the_caller_id_answer(crm: Sessions) -> None:
    known = await _customer(crm, "Li Na")
    found = await _identified(crm, make.arrived("6.1", NUMBER), make.ivr_finished("6.1", None))
    assert [(e.customer_id, e.by) for e in found] == [(known, IdentifiedBy.CALLER_ID)]


@pytest.mark.asyncio
@pytest.mark.parametrize("ivr_first", [False, True], ids=["call-first", "ivr-first"])
async def test_the_ivr_hears_the_calls_identification_and_the_crm_is_asked_once(
    crm: Sessions, monkeypatch: pytest.MonkeyPatch, ivr_first: bool
) -> None:
    """The IVR's identify step (to greet, to offer the PIN) and the published identification
    are one CRM question, whichever asks first; the IVR reads its own fields by the id."""
    known = await _customer(crm, "Li Na")
    asked: list[str] = []

    async def counted(session: AsyncSession, number: str, region: str) -> LookupResult:
        asked.append(number)
        return await identify_caller(session, number, region)

    monkeypatch.setattr(identification_module, "identify_caller", counted)
    bus = MemoryBus()
    heard: list[DomainEvent] = []
    bus.listen((CustomerIdentified,), heard.append)
    identification = CallerIdentification(crm, "CN")
    identification.subscribe(bus)
    ivr = CrmLookup(crm, identification.customer_of).for_call(CallKey(NODE, "7.1"))
    if ivr_first:
        customer = await ivr(NUMBER)
        bus.publish(make.arrived("7.1", NUMBER))
    else:
        bus.publish(make.arrived("7.1", NUMBER))
        customer = await ivr(NUMBER)
    again = await ivr(NUMBER)  # a flow that identifies twice
    await identification.settled()
    await identification.close()
    assert customer is not None
    assert (customer.customer_id, customer.name, customer.has_pin) == (known, "Li Na", False)
    assert again == customer
    assert asked == [NUMBER]
    assert [(e.customer_id, e.by) for e in heard if isinstance(e, CustomerIdentified)] == [
        (known, IdentifiedBy.CALLER_ID)
    ]


def test_an_identification_crosses_processes_with_its_kind() -> None:
    sent = CustomerIdentified(
        node=NODE,
        linkedid="8.1",
        caller_number=NUMBER,
        customer_id=7,
        by=IdentifiedBy.CALLER_ID,
        lookup="found",
        number=NUMBER,
        matches=[7],
        at=datetime(2026, 11, 23, 10, tzinfo=UTC),
    )
    received = event_from_dict(sent.to_dict())
    assert received == sent
    assert isinstance(received, CustomerIdentified)
    assert received.by is IdentifiedBy.CALLER_ID
    with pytest.raises(ValueError, match="'pin'"):
        CustomerIdentified(
            node=NODE,
            linkedid="8.1",
            caller_number="",
            customer_id=7,
            by="pin",  # type: ignore[arg-type]
            lookup="found",
        )
