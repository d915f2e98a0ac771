"""The router takes the caller's customer from ``CustomerIdentified``: it asks the CRM for the
customer's facts, never who is calling; the IVR's identification stands over the caller ID's."""

from __future__ import annotations

import pytest

from crm_core.routing import CustomerFacts
from cti_server.events import CallRouted, CustomerIdentified, IdentifiedBy
from tests.support.routing_centre import CALLER, NODE, Centre


def _identified(customer_id: int | None, by: IdentifiedBy) -> CustomerIdentified:
    return CustomerIdentified(
        node=NODE,
        linkedid="c1",
        caller_number="+861",
        customer_id=customer_id,
        by=by,
        lookup="found" if customer_id else "unknown",
    )


def _waiting(centre: Centre) -> None:
    centre.sign_in("3001")
    centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER, CallerIDNum="+861")


@pytest.mark.asyncio
async def test_a_caller_identified_by_number_is_routed_with_their_crm_facts() -> None:
    centre = Centre(CustomerFacts(7, "gold", 0.0, preferred_extension=None))
    _waiting(centre)
    centre.router.on_event(_identified(7, IdentifiedBy.CALLER_ID))
    centre.caller_joins("support")
    await centre.router.route_once()
    [routed] = centre.of(CallRouted)
    assert routed.decision["priority"]["tier"] == "gold"


@pytest.mark.asyncio
async def test_a_caller_nobody_knows_is_routed_on_what_the_ivr_said() -> None:
    centre = Centre(CustomerFacts(7, "gold", 0.0, preferred_extension=None))
    _waiting(centre)
    centre.router.on_event(_identified(None, IdentifiedBy.CALLER_ID))
    centre.caller_joins("support")
    await centre.router.route_once()
    [routed] = centre.of(CallRouted)
    assert routed.decision["priority"]["tier"] == "standard"


@pytest.mark.asyncio
async def test_the_ivrs_identification_is_not_undone_by_the_caller_id() -> None:
    centre = Centre(CustomerFacts(7, "gold", 0.0, preferred_extension=None))
    _waiting(centre)
    centre.router.on_event(_identified(7, IdentifiedBy.IVR))
    centre.router.on_event(_identified(8, IdentifiedBy.CALLER_ID))
    centre.caller_joins("support")
    await centre.router.route_once()
    [routed] = centre.of(CallRouted)
    assert routed.decision["priority"]["tier"] == "gold"


@pytest.mark.asyncio
async def test_a_caller_waits_for_their_identification_before_anyone_is_offered_the_call() -> None:
    """The customer decides who gets the call: it is held while the CRM is asked who is
    calling, and routed on what is known once that takes too long."""
    centre = Centre(CustomerFacts(7, "gold", 0.0, preferred_extension=None), identify_wait=2.0)
    _waiting(centre)
    centre.caller_joins("support")
    await centre.router.route_once()
    assert centre.of(CallRouted) == []
    centre.router.on_event(_identified(7, IdentifiedBy.CALLER_ID))
    await centre.router.route_once()
    [routed] = centre.of(CallRouted)
    assert routed.decision["priority"]["tier"] == "gold"


@pytest.mark.asyncio
async def test_a_caller_whose_identification_is_late_is_routed_without_it() -> None:
    centre = Centre(CustomerFacts(7, "gold", 0.0, preferred_extension=None), identify_wait=2.0)
    _waiting(centre)
    centre.caller_joins("support")
    centre.clock.advance(2)
    await centre.router.route_once()
    [routed] = centre.of(CallRouted)
    assert routed.decision["priority"]["tier"] == "standard"
