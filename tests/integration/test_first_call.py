"""The first real call: a simulated customer through real Asterisk, the CTI server and a queue."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cti_server.app import BUS
from cti_server.events import CallArrived
from cti_server.sim.simulation import place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.waiting import EventLog, agent_complete, event_is, poll_until

pytestmark = pytest.mark.asterisk

NUMBER = "+8613800138000"
NAME = "张伟"


async def _call_is_answered_and_ends(log: EventLog, linkedid: str) -> None:
    connect = await log.wait_for(event_is("AgentConnect", Linkedid=linkedid), 15, "agent answer")
    assert connect["MemberName"] == "sim-1001"
    await log.wait_for(agent_complete(linkedid), 20, "agent hang-up")
    await log.wait_for(event_is("Hangup", Uniqueid=linkedid), 20, "customer hang-up")


@pytest.mark.asyncio
async def test_customer_call_reaches_cti_then_queue_then_agent(
    asterisk_node: AsteriskNode, cti_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    arrivals = cti_app[BUS].subscribe(CallArrived)
    settings = asterisk_node.settings
    async with sim_agents(client, "support", ["1001"]):
        call = await place_customer_call(
            client,
            context=settings.dialplan.inbound_context,
            number=NUMBER,
            name=NAME,
            dialed="100",
            audio="cti/sim-hello",
            patience=30,
        )
        arrived = await arrivals.get(timeout=15)
        assert isinstance(arrived, CallArrived)
        assert (arrived.caller_number, arrived.caller_name) == (NUMBER, NAME)
        assert arrived.linkedid == call.uniqueid
        assert arrived.dialed == "100"
        assert arrived.node == settings.ami.node

        join = await log.wait_for(
            event_is("QueueCallerJoin", Linkedid=call.uniqueid), 15, "queue join"
        )
        assert join["Queue"] == "support"
        assert (join["CallerIDNum"], join["CallerIDName"]) == (NUMBER, NAME)
        await _call_is_answered_and_ends(log, call.uniqueid)
    assert not any(
        event_is("VarSet", Variable="CTI_FALLBACK", Linkedid=call.uniqueid)(e) for e in log.events
    ), "the call took the fallback although the CTI server was up"


@pytest.mark.asyncio
async def test_call_reaches_queue_through_fallback_when_cti_is_down(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    settings = asterisk_node.settings
    async with sim_agents(client, "support", ["1001"]):
        call = await place_customer_call(
            client,
            context=settings.dialplan.inbound_context,
            number=NUMBER,
            name=NAME,
            patience=30,
        )
        await log.wait_for(
            event_is("VarSet", Variable="CTI_FALLBACK", Linkedid=call.uniqueid), 15, "fallback"
        )
        join = await log.wait_for(
            event_is("QueueCallerJoin", Linkedid=call.uniqueid), 15, "queue join"
        )
        assert join["Queue"] == settings.dialplan.default_queue
        assert join["CallerIDName"] == NAME
        await _call_is_answered_and_ends(log, call.uniqueid)


@pytest.mark.asyncio
async def test_status_reports_each_part(
    cti_app: web.Application, asterisk_node: AsteriskNode
) -> None:
    url = f"http://127.0.0.1:{asterisk_node.settings.http.port}/status"
    async with aiohttp.ClientSession() as http:

        async def _ok() -> dict[str, Any] | None:
            async with http.get(url) as response:
                body: dict[str, Any] = await response.json()
                return body if response.status == 200 else None

        body = await poll_until(_ok, 10, what="/status ok")
    assert body["ok"] is True
    for part in ("ami", "database", "bus", "agi"):
        assert body[part]["ok"] is True, part
