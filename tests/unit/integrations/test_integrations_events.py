"""The public events: their documents, their shapes, transfers, and the customer on each."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from cti_server.bus import MemoryBus
from cti_server.events import CallStarted, CustomerIdentified, HandoverKind, IdentifiedBy
from cti_server.integrations.events import TYPES, Customer
from cti_server.integrations.schema_docs import documents, render
from cti_server.integrations.service import IntegrationService
from cti_server.integrations.settings import IntegrationsSettings
from cti_server.integrations.translate import Outgoing
from cti_server.integrations.webhooks import Webhooks
from tests.support import domain_events as make
from tests.support.replay import load, replay

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"
LIVE = Path(__file__).resolve().parents[2] / "data" / "ami_live"
KNOWN = Customer(id=7, name="Wang Fang", tier="gold")


class Collected:
    """A receiver that keeps every public event, as a stream client would get them."""

    def __init__(self) -> None:
        self.events: list[Outgoing] = []
        self.arrival = asyncio.Event()

    def offer(self, outgoing: Outgoing) -> None:
        self.events.append(outgoing)
        self.arrival.set()

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    async def until(self, count: int) -> list[Outgoing]:
        async with asyncio.timeout(5):
            while len(self.events) < count:
                self.arrival.clear()
                await self.arrival.wait()
        return self.events


class Directory:
    """The CRM's answers for the customers the IVR identified."""

    def __init__(self) -> None:
        self.by_id_asked: list[int] = []

    async def by_id(self, customer_id: int) -> Customer | None:
        self.by_id_asked.append(customer_id)
        return Customer(id=customer_id, name="Li Lei", tier="silver")


def _identified(linkedid: str, customer: Customer | None) -> CustomerIdentified:
    """The caller identification's answer for the call's caller ID."""
    return CustomerIdentified(
        node=make.NODE,
        linkedid=linkedid,
        caller_number=make.CALLER,
        customer_id=customer.id if customer else None,
        by=IdentifiedBy.CALLER_ID,
        lookup="found" if customer else "unknown",
        name=customer.name or "" if customer else "",
        tier=customer.tier or "" if customer else "",
    )


def _service(
    bus: MemoryBus, directory: Directory | None = None, identify_seconds: float = 2.0
) -> tuple[IntegrationService, Collected]:
    service = IntegrationService(
        bus, Webhooks(IntegrationsSettings()), directory, identify_seconds=identify_seconds
    )
    collected = Collected()
    service.receivers.add(collected)
    return service, collected


def _validate(event: dict[str, Any]) -> None:
    schema = json.loads((DOCS / f"{event['type']}.v{event['version']}.json").read_text("utf-8"))
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(event)


def test_the_committed_documents_are_what_the_models_give() -> None:
    generated = documents()
    committed = {p.name for p in DOCS.glob("*.json")}
    assert committed == set(generated), "python -m cti_server.integrations.schema_docs docs/events"
    for name, document in generated.items():
        assert (DOCS / name).read_text("utf-8") == render(document), f"{name} is out of date"


def test_the_asyncapi_document_names_every_event_and_its_references_resolve() -> None:
    document = json.loads((DOCS / "asyncapi.json").read_text("utf-8"))
    assert set(document["components"]["messages"]) == set(TYPES)
    assert set(document["channels"]["stream"]["messages"]) == set(TYPES)

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    pointers = refs(document)
    assert len(pointers) > 20
    for pointer in pointers:
        target: Any = document
        for part in pointer.removeprefix("#/").split("/"):
            assert isinstance(target, dict), pointer
            assert part in target, f"{pointer} does not resolve"
            target = target[part]


@pytest.mark.asyncio
async def test_a_recorded_call_through_the_real_tracker_gives_valid_public_events() -> None:
    bus = MemoryBus()
    service, collected = _service(bus)
    await service.start()
    try:
        _tracker, published = replay(load(LIVE / "agent_hangs_up.json"))
        for event in published:
            bus.publish(event)
        call = published[0]
        assert isinstance(call, CallStarted)
        bus.publish(dataclasses.replace(make.complaint(call.linkedid), node=call.node))
        events = await collected.until(4)
    finally:
        await service.close()
    assert [e.type for e in events] == [
        "call.ringing",
        "call.answered",
        "call.ended",
        "complaint.detected",
    ]
    for outgoing in events:
        _validate(outgoing.as_dict())
    ended = events[2].as_dict()
    assert ended["data"]["agent"] == {"member": "sim-2004", "extension": "2004"}
    assert ended["data"]["hung_up_by"] == "agent"
    complaint = events[3].as_dict()
    assert complaint["data"]["agent"]["extension"] == "2004"  # known from the call
    assert complaint["data"]["evidence"][0]["text"] == "you charged me twice"
    assert {e.agents for e in events} == {frozenset({"2004"})}


@pytest.mark.asyncio
async def test_call_arrived_carries_the_customer_and_the_call_keeps_its_order() -> None:
    bus = MemoryBus()
    directory = Directory()
    service, collected = _service(bus, directory)
    for event in (
        make.arrived("c1"),
        make.ringing("c1", "agent-1001"),
        make.arrived("c2", caller="+8613900000009"),  # another call is not held up
    ):
        service.handle(event)
    await asyncio.sleep(0)
    assert collected.types() == []  # both wait for the caller identification
    service.handle(_identified("c1", KNOWN))
    service.handle(_identified("c2", None))
    events = await collected.until(3)
    by_call = [(e.event.data.call_id, e.type) for e in events]
    assert by_call.index(("c1", "call.arrived")) < by_call.index(("c1", "call.ringing"))
    first = events[by_call.index(("c1", "call.arrived"))].as_dict()
    assert first["data"]["customer"] == {"id": 7, "name": "Wang Fang", "tier": "gold"}
    assert first["data"]["caller"] == {"number": make.CALLER, "name": make.CALLER_NAME}
    ringing = events[by_call.index(("c1", "call.ringing"))].as_dict()
    assert ringing["data"]["customer"]["id"] == 7
    other = events[by_call.index(("c2", "call.arrived"))].as_dict()
    assert other["data"]["customer"] is None
    for outgoing in events:
        _validate(outgoing.as_dict())


@pytest.mark.asyncio
async def test_the_customer_the_ivr_identified_replaces_the_caller_id_match() -> None:
    bus = MemoryBus()
    directory = Directory()
    service, collected = _service(bus, directory)
    service.handle(_identified("c1", KNOWN))  # the identification may come first
    service.handle(make.arrived("c1"))
    service.handle(make.ivr_finished("c1", customer_id=42))
    service.handle(make.ringing("c1", "agent-1001"))
    events = await collected.until(2)
    assert directory.by_id_asked == [42]
    assert events[0].as_dict()["data"]["customer"]["id"] == 7
    assert events[1].as_dict()["data"]["customer"] == {"id": 42, "name": "Li Lei", "tier": "silver"}


@pytest.mark.asyncio
async def test_a_crm_that_does_not_answer_in_time_leaves_the_customer_unknown() -> None:
    bus = MemoryBus()
    service, collected = _service(bus, Directory(), identify_seconds=0.05)  # never identified
    service.handle(make.arrived("c1"))
    service.handle(make.ringing("c1", "agent-1001"))
    events = await collected.until(2)
    assert [e.type for e in events] == ["call.arrived", "call.ringing"]
    assert events[0].as_dict()["data"]["customer"] is None


@pytest.mark.parametrize("kind", ["attended", "blind", "blonde", "pickup", "forward", "redirect"])
def test_a_hand_over_made_anywhere_is_a_transfer_seen_by_both_agents(kind: HandoverKind) -> None:
    """A transfer the phone made (no queue, no desktop) reaches integrators: the tracker's
    ``CallTransferred`` is the source, and both agents may see the rest of the call."""
    bus = MemoryBus()
    service, collected = _service(bus)
    ended = dataclasses.replace(
        make.ended("c1", "agent-1001"),
        chain=[
            {"party": "PJSIP/1001", "extension": "1001", "agent": "agent-1001", "how": "answer"},
            {"party": "PJSIP/1002", "extension": "1002", "agent": "agent-1002", "how": kind},
        ],
    )
    for event in (
        make.answered("c1", "agent-1001"),
        make.transferred("c1", "agent-1001", "agent-1002", kind),
        ended,
    ):
        service.handle(event)
    assert collected.types() == ["call.answered", "call.transferred", "call.ended"]
    transfer = collected.events[1].as_dict()["data"]
    assert transfer["from_agent"] == {"member": "agent-1001", "extension": "1001"}
    assert transfer["to_agent"] == {"member": "agent-1002", "extension": "1002"}
    assert transfer["to_queue"] is None
    assert collected.events[1].agents == {"1001", "1002"}
    end = collected.events[2]
    assert end.as_dict()["data"]["agent"]["extension"] == "1002"  # the last party, not the first
    assert end.agents == {"1001", "1002"}  # both had the call
    for outgoing in collected.events:
        _validate(outgoing.as_dict())


TRANSFERS = Path(__file__).resolve().parents[2] / "data" / "ami_transfers"


@pytest.mark.parametrize(
    ("recording", "handed", "last"),
    [
        ("attended_keyed", [(None, "2111", "2112")], "2112"),  # keyed on the phone
        ("blind_keyed", [(None, "2151", "2152")], "2152"),
        ("pickup_directed", [(None, "2171", "2172")], "2172"),
        ("blind_ami_queue", [("sales", "2131", None), ("sales", "2131", "2132")], "2132"),
        ("back_to_first_agent", [(None, "2211", "2212"), (None, "2212", "2211")], "2211"),
    ],
)
@pytest.mark.asyncio
async def test_hand_overs_recorded_from_real_phones_reach_integrators(
    recording: str, handed: list[tuple[str | None, str, str | None]], last: str
) -> None:
    """Real Asterisk 22 traffic through the real tracker: transfers made on the phones (no
    desktop), a pickup and a transfer back each give integrators their ``call.transferred``."""
    bus = MemoryBus()
    service, collected = _service(bus)
    _tracker, published = replay(load(TRANSFERS / f"{recording}.json"))
    for event in published:
        service.handle(event)
    transfers = [e.as_dict()["data"] for e in collected.events if e.type == "call.transferred"]
    assert [
        (
            t["to_queue"],
            t["from_agent"]["extension"],
            t["to_agent"]["extension"] if t["to_agent"] else None,
        )
        for t in transfers
    ] == handed
    (ended,) = [e for e in collected.events if e.type == "call.ended" and e.agents]
    assert ended.as_dict()["data"]["agent"]["extension"] == last
    assert {x for _, a, b in handed for x in (a, b) if x} <= ended.agents
    for outgoing in collected.events:
        _validate(outgoing.as_dict())


def test_a_call_sent_back_to_a_queue_is_announced_waiting_then_taken() -> None:
    bus = MemoryBus()
    service, collected = _service(bus)
    for event in (
        make.answered("c1", "agent-1001"),
        make.queued("c1", "sales"),
        make.transferred("c1", "agent-1001", "agent-1002", "blind", queue="sales"),
        make.answered("c1", "agent-1002", queue="sales"),
        make.ended("c1", "agent-1001"),  # v1 producers: no chain, the first answerer
    ):
        service.handle(event)
    assert collected.types() == [
        "call.answered",
        "call.transferred",
        "call.transferred",
        "call.answered",
        "call.ended",
    ]
    waiting, taken = (collected.events[i].as_dict()["data"] for i in (1, 2))
    assert (waiting["from_agent"]["extension"], waiting["to_queue"], waiting["to_agent"]) == (
        "1001",
        "sales",
        None,
    )
    assert collected.events[1].agents == {"1001"}
    assert (taken["to_queue"], taken["to_agent"]["extension"]) == ("sales", "1002")
    assert collected.events[2].agents == {"1001", "1002"}
    assert collected.events[4].as_dict()["data"]["agent"]["extension"] == "1002"
    for outgoing in collected.events:
        _validate(outgoing.as_dict())


def test_a_second_answer_alone_is_no_transfer_and_a_phone_outside_the_queues_is_named() -> None:
    """Only the tracker says a party took the call over; a picking phone that is no queue
    member is named by its device."""
    bus = MemoryBus()
    service, collected = _service(bus)
    for event in (
        make.answered("c1", "agent-1001"),
        make.answered("c1", "agent-1001"),  # told twice (a resync, another server)
        make.transferred("c1", "agent-1001", "PJSIP/1003", "pickup"),
    ):
        service.handle(event)
    assert collected.types() == ["call.answered", "call.answered", "call.transferred"]
    data = collected.events[2].as_dict()["data"]
    assert data["to_agent"] == {"member": "PJSIP/1003", "extension": "1003"}
    _validate(collected.events[2].as_dict())


def test_unknown_internal_values_map_onto_the_public_vocabulary() -> None:
    bus = MemoryBus()
    service, collected = _service(bus)
    event = make.complaint("c9")
    service.handle(dataclasses.replace(event, category="weather", severity="apocalyptic"))
    data = collected.events[0].as_dict()["data"]
    assert (data["category"], data["severity"], data["agent"]) == ("other", "medium", None)
    assert collected.events[0].agents == frozenset()  # nobody's call: supervisors only
    _validate(collected.events[0].as_dict())


@pytest.mark.asyncio
async def test_an_event_the_public_shapes_refuse_is_logged_and_the_stream_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MemoryBus()
    service, collected = _service(bus)
    await service.start()
    broken = make.complaint("c1")
    broken.evidence[0]["weight"] = "heavy"
    try:
        bus.publish(broken)
        bus.publish(make.ended("c1", "agent-1001"))
        events = await collected.until(1)
    finally:
        await service.close()
    assert [e.type for e in events] == ["call.ended"]
    assert "could not publish ComplaintDetected" in caplog.text
