"""The pop service alone: the caller as identified (read when a desk may pop, or at the ring),
and the router's word as published, with no read of the interaction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.pop import PopService, ring_text
from agent_ui.ws import Prepared, encoded, encoded_as_made
from cti_server.events import (
    AgentRinging,
    CallRangOut,
    CallRouted,
    CustomerIdentified,
    IdentifiedBy,
)
from tests.support import domain_events as make
from tests.support.blank_crm import add_customer, blank_crm

NODE = "pbx1"
NUMBER = "+8613800138000"


@pytest_asyncio.fixture
async def pops(tmp_path: Path) -> AsyncIterator[tuple[PopService, int]]:
    async with blank_crm(tmp_path) as sessions:
        customer = await add_customer(sessions, "Li Na", NUMBER)
        service = PopService(sessions, "CN")
        try:
            yield service, customer
        finally:
            await service.close()


def _ringing(linkedid: str) -> AgentRinging:
    return replace(make.ringing(linkedid, "agent-8101"), caller_number=NUMBER)


def _identified(linkedid: str, customer_id: int | None) -> CustomerIdentified:
    return CustomerIdentified(
        node=NODE,
        linkedid=linkedid,
        caller_number=NUMBER,
        customer_id=customer_id,
        by=IdentifiedBy.CALLER_ID,
        lookup="found" if customer_id else "unknown",
        number=NUMBER,
        matches=[customer_id] if customer_id else [],
    )


@pytest.mark.asyncio
async def test_a_caller_identified_before_anyone_signed_in_still_pops_with_their_record(
    pops: tuple[PopService, int],
) -> None:
    service, customer = pops
    service.identified(_identified("1.1", customer), read_now=False)
    assert service.lookups() == []  # nobody to pop yet: nothing read
    pop = await service.pop_for(_ringing("1.1"))
    assert pop["lookup"] == "found"
    assert pop["customer"]["id"] == customer
    assert pop["matches"] == [
        {"id": customer, "name": "Li Na", "tier": "standard", "language": None}
    ]


@pytest.mark.asyncio
async def test_a_call_rings_before_its_caller_is_identified_and_pops_once_they_are(
    pops: tuple[PopService, int],
) -> None:
    service, _ = pops
    ringing = asyncio.create_task(service.pop_for(_ringing("2.1")))
    await asyncio.sleep(0)  # one turn of the loop: the call rings (its pop is begun) first
    assert not ringing.done()
    service.identified(_identified("2.1", None))
    pop = await asyncio.wait_for(ringing, 5)
    assert (pop["lookup"], pop["number"], pop["matches"]) == ("unknown", NUMBER, [])


@pytest.mark.asyncio
async def test_the_routers_word_joins_the_pop_as_published(pops: tuple[PopService, int]) -> None:
    service, customer = pops
    service.identified(_identified("3.1", customer))
    rang = [{"agent": "8102", "reason": "ring-no-answer"}]
    service.routed(
        CallRangOut(node=NODE, linkedid="3.1", extension="8102", reason="x", no_answer=rang)
    )
    decision = {"rule": "only qualified agent", "agent": "8101", "candidates": [{"agent": "8101"}]}
    added = service.routed(
        CallRouted(node=NODE, linkedid="3.1", extension="8101", rule="r", decision=decision)
    )
    said = {"decided by": "you were the only qualified agent free", "also qualified": "nobody else"}
    assert added == said
    pop = await service.pop_for(_ringing("3.1"))
    assert pop["routing"] == {"rang out first at": "8102 (paused: not answering)", **said}


async def _read_in_the_ivr(service: PopService, linkedid: str, customer: int) -> None:
    """The caller identified and their record read while they were in the IVR."""
    service.identified(_identified(linkedid, customer))
    await asyncio.gather(*service.lookups())


@pytest.mark.asyncio
async def test_a_record_read_while_the_caller_was_in_the_ivr_pops_at_the_ring_without_a_wait(
    pops: tuple[PopService, int],
) -> None:
    service, customer = pops
    await _read_in_the_ivr(service, "4.1", customer)
    ring = service.pop_for(_ringing("4.1"))
    with pytest.raises(StopIteration) as done:  # the pop is there at its first step
        ring.send(None)
    pop = done.value.value
    assert (pop["lookup"], pop["customer"]["id"]) == ("found", customer)
    assert (pop["call"]["linkedid"], pop["call"]["caller_number"]) == ("4.1", NUMBER)
    assert isinstance(pop, Prepared)  # its record was encoded as it was read, too
    assert json.loads(encoded(pop)) == json.loads(json.dumps(pop))


@pytest.mark.asyncio
async def test_a_second_ring_of_a_call_says_what_the_ivr_and_the_router_said_since_the_first(
    pops: tuple[PopService, int],
) -> None:
    service, customer = pops
    await _read_in_the_ivr(service, "4.2", customer)
    first = service.ready(_ringing("4.2"))
    assert first is not None
    assert json.loads(encoded(first))["identity"]["verified"] is False

    service.ivr_finished(
        replace(make.ivr_finished("4.2", customer), attributes={"verified": "pin"})
    )
    decision = {"rule": "only qualified agent", "agent": "8101", "candidates": [{"agent": "8101"}]}
    said = service.routed(
        CallRouted(node=NODE, linkedid="4.2", extension="8101", rule="r", decision=decision)
    )
    second = service.ready(_ringing("4.2"))  # rung again: another agent, or the same later
    assert isinstance(second, Prepared)
    sent = json.loads(encoded(second))
    assert sent == json.loads(json.dumps(second))
    assert sent["identity"] == {"verified": True, "note": "verified: PIN typed in the IVR"}
    assert said.items() <= sent["routing"].items()
    assert sent["ivr"]["attributes"] == {"verified": "pin"}
    assert sent["customer"]["id"] == customer


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["", 'O\'Brien "the boss"', "李娜\u2028</script>\\"])
async def test_a_rings_pop_is_sent_as_the_general_encoder_writes_it_whatever_the_callers_name(
    pops: tuple[PopService, int], name: str
) -> None:
    service, customer = pops
    await _read_in_the_ivr(service, "4.3", customer)
    state = {"state": "ringing", "reason": ""}
    pop = service.ready(replace(_ringing("4.3"), caller_name=name))
    assert pop is not None
    pop["call"]["state"] = "ringing"  # as the desks set it
    with_state = ring_text(pop, state)
    assert with_state == encoded_as_made(pop, agent_state=state)
    assert ring_text(pop) == encoded_as_made(pop)
    sent = json.loads(with_state)
    assert sent == {**json.loads(json.dumps(pop)), "agent_state": state}
    assert sent["call"]["caller_name"] == name

    odd = service.ready(replace(_ringing("4.3"), queue=cast(str, None)))  # not a string
    assert odd is not None
    odd["call"]["state"] = "connected"
    assert json.loads(ring_text(odd, state))["call"]["queue"] is None
    assert ring_text(odd, state) == encoded_as_made(odd, agent_state=state)
    odd["call"]["transferred_by"] = "Alice"  # another shape
    assert ring_text(odd) == encoded_as_made(odd)
    assert json.loads(ring_text(odd))["call"]["transferred_by"] == "Alice"


class _Unreachable:
    """A CRM that cannot be reached: every session fails as it opens."""

    def __call__(self) -> _Unreachable:
        return self

    async def __aenter__(self) -> None:
        raise OSError("database unreachable")

    async def __aexit__(self, *_exc: object) -> None:
        return None


@pytest.mark.asyncio
async def test_a_record_that_could_not_be_read_pops_as_unavailable_with_the_callers_number() -> (
    None
):
    service = PopService(cast(async_sessionmaker[AsyncSession], _Unreachable()), "CN")
    try:
        service.identified(_identified("5.1", 7))
        (lookup,) = service.lookups()
        await asyncio.gather(lookup, return_exceptions=True)  # failed before the ring
        pop = await service.pop_for(_ringing("5.1"))
        assert (pop["lookup"], pop["number"], pop["matches"]) == ("unavailable", NUMBER, [])
        assert "customer" not in pop
    finally:
        await service.close()
