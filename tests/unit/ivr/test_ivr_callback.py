"""A callback taken in the IVR keeps the caller's place: the queue, the callers ahead, the
estimated wait offered and the time they called, by which callbacks are due."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_core.callbacks import callback_task
from crm_core.customers import create_customer
from crm_core.followups import follow_ups_for
from crm_core.interactions import record_interaction
from crm_core.models import User
from crm_core.schemas import CustomerIn, InteractionIn
from cti_server.asterisk.data import data_dir
from cti_server.events import CallbackRequested, DomainEvent
from cti_server.ivr.inbound import InboundCalls
from cti_server.ivr.registry import FlowRegistry
from cti_server.recorder.entries import InteractionUpdate
from cti_server.recorder.recorder import interaction_update
from tests.support.blank_crm import blank_crm
from tests.support.ivr_script import VIP_NUMBER, Crm, ScriptedChannel


class Arriving:
    """A call just arrived from the VIP, as an AGI transport shows it."""

    env: Mapping[str, str] = {"agi_callerid": VIP_NUMBER, "agi_uniqueid": "1700000000.9"}

    def __init__(self) -> None:
        self.variables: dict[str, str] = {}

    async def get_variable(self, name: str) -> str:
        return {"${CHANNEL(linkedid)}": "1700000000.9"}.get(name, "")

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value


@pytest.mark.asyncio
async def test_a_callback_carries_the_place_the_caller_had_when_offered(tmp_path: Path) -> None:
    shutil.copy(data_dir("ivr_flows") / "main.yaml", tmp_path / "main.yaml")  # open all hours
    published: list[DomainEvent] = []

    class Bus:
        def publish(self, event: DomainEvent) -> None:
            published.append(event)

    calls = InboundCalls(
        Bus(),
        "pbx1",
        "support",
        flows=FlowRegistry(tmp_path),
        flow_name="main",
        estimate_wait=lambda queue: 420.0 if queue == "support" else 0.0,
        callers_ahead=lambda queue: 4 if queue == "support" else 0,
        engine=Crm().engine(),
    )
    session = Arriving()
    await calls.walk_inbound(session, ScriptedChannel(["1", "1"]))  # billing, then callback

    arrived = published[0]
    callback = next(e for e in published if isinstance(e, CallbackRequested))
    assert session.variables == {"CTI_ROUTE": "hangup"}
    assert callback.kind == "callback"
    assert callback.queue == "support"
    assert callback.position == 5  # four ahead
    assert callback.estimated_wait == 420.0
    assert callback.joined_at == arrived.at
    assert callback.joined_at is not None
    assert callback.joined_at <= callback.at


def _request(
    linkedid: str, joined: datetime, requested: datetime, position: int
) -> CallbackRequested:
    return CallbackRequested(
        node="pbx1",
        linkedid=linkedid,
        caller_number=VIP_NUMBER,
        queue="support",
        estimated_wait=600.0,
        customer_id=None,
        position=position,
        joined_at=joined,
        at=requested,
    )


@pytest.mark.asyncio
async def test_callbacks_are_due_in_the_order_callers_called(tmp_path: Path) -> None:
    """The caller who called first but took longer in the IVR is still first in line."""
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    first = _request("1.1", t0, t0 + timedelta(minutes=5), position=3)
    second = _request("1.2", t0 + timedelta(minutes=1), t0 + timedelta(minutes=2), position=4)
    async with blank_crm(tmp_path) as sessions:
        async with sessions() as session, session.begin():
            customer = await create_customer(
                session, CustomerIn.model_validate({"name": "VIP"}), "CN"
            )
            for event in (second, first):  # the later caller asks first
                update = interaction_update(event)
                assert isinstance(update, InteractionUpdate)
                assert update.callback is not None
                row = await record_interaction(
                    session,
                    InteractionIn.model_validate(
                        {"node": "pbx1", "linkedid": event.linkedid, "kind": "inbound_call"}
                    ),
                )
                request = update.callback.model_copy(update={"customer_id": customer.id})
                await callback_task(session, row.id, request, "CN")
            manager = User(username="m", display_name="m", role="manager", password_hash="x")
            tasks = await follow_ups_for(session, manager)
        assert [t.queue_position for t in tasks] == [3, 4]
        assert [t.due_at for t in tasks] == [t0, t0 + timedelta(minutes=1)]
        assert [t.joined_at for t in tasks] == [t0, t0 + timedelta(minutes=1)]
        assert {(t.queue, t.estimated_wait) for t in tasks} == {("support", 600)}
        assert "number 3 in line" in tasks[0].note
