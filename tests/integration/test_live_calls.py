"""Real Asterisk, many calls at once: the tracker and the recorder against Asterisk's queue_log."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction
from cti_server.app import AMI, BUS, DATABASE, TRACKER, WATCHDOG
from cti_server.events import AmiLinkChanged, DomainEvent, NodeResynced
from cti_server.sim.simulation import place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.ami_flood import block_with_ami_burst
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import call_through_ivr
from tests.support.queue_log import (
    QueueLogCall,
    all_ended,
    assert_each_call_as_asterisk_saw,
    assert_recorded_as_asterisk_saw,
    recorded_calls,
)
from tests.support.waiting import EventLog, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.mark.asyncio
async def test_twenty_calls_five_agents_some_abandon_all_recorded_as_asterisk_saw_them(
    asterisk_node: AsteriskNode, cti_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    """20 callers at once, 5 agents: a quarter give up in the queue, a quarter hang up while
    the agent still talks, the rest are hung up on. Each call is in the CRM as Asterisk's
    queue_log has it, and the live queue figures count exactly what queue_log counts."""
    client, _ = ami
    settings = asterisk_node.settings
    node = settings.ami.node
    tracker = cti_app[TRACKER]

    async def _first_resync() -> bool:
        return tracker.resync_count(node) >= 1

    def _answered_abandoned() -> tuple[int, int]:
        stats = tracker.queue_stats(node, "support")
        return (stats.answered, stats.abandoned) if stats is not None else (0, 0)

    await poll_until(_first_resync, 30, what="the resync after the first login")
    answered_before, abandoned_before = _answered_abandoned()
    agents = [f"20{n:02d}" for n in range(1, 6)]
    numbers = [f"+86138{n:08d}" for n in range(20)]
    async with sim_agents(client, "support", agents):
        placed = await asyncio.gather(
            *(
                place_customer_call(
                    client,
                    context=settings.dialplan.inbound_context,
                    number=number,
                    name=f"Caller {n}",
                    # n % 4: 3 gives up after 2 s; 1 hangs up on an agent who would talk 60 s
                    patience={3: 2, 1: 20}.get(n % 4, 40),
                    talk=60 if n % 4 == 1 else None,
                )
                for n, number in enumerate(numbers)
            )
        )
        number_of = {call.uniqueid: call.caller_number for call in placed}
        callids = set(number_of)
        queue_log = asterisk_node.instance.log_dir / "queue_log"

        async def _asterisk_done() -> dict[str, QueueLogCall] | None:
            return all_ended(queue_log, callids)

        truth = await poll_until(_asterisk_done, 180, interval=0.5, what="all calls ended")

    sessions = async_sessionmaker(cti_app[DATABASE], expire_on_commit=False)

    async def _recorded() -> dict[str, Interaction] | None:
        return await recorded_calls(sessions, callids)

    recorded = await poll_until(_recorded, 30, interval=0.2, what="all calls in the CRM")
    assert {t.outcome for t in truth.values()} == {"answered", "abandoned"}, truth
    assert {t.ended_by for t in truth.values() if t.outcome == "answered"} == {"caller", "agent"}
    assert_recorded_as_asterisk_saw(recorded, truth, numbers)
    assert_each_call_as_asterisk_saw(recorded, truth, number_of)
    for callid, real in truth.items():
        if real.outcome == "answered":
            assert recorded[callid].agent_name == real.agent
    assert not [c for c in tracker.live_calls(node) if c.linkedid in callids]
    answered, abandoned = _answered_abandoned()
    outcomes = Counter(t.outcome for t in truth.values())
    assert answered - answered_before == outcomes["answered"], outcomes
    assert abandoned - abandoned_before == outcomes["abandoned"], outcomes


@pytest.mark.asyncio
async def test_metrics_show_the_queue_and_the_link(
    asterisk_node: AsteriskNode, cti_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    client, _ = ami
    async with sim_agents(client, "support", ["2101"]):
        await call_through_ivr(
            ami, asterisk_node, "+8613800138000", until="answered", within=20, patience=30
        )
    node = asterisk_node.settings.ami.node
    url = f"http://127.0.0.1:{asterisk_node.settings.http.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples[f'cti_ami_connected{{node="{node}"}}'] == 1
    assert samples[f'cti_queue_offered_total{{node="{node}",queue="support"}}'] >= 1
    assert samples[f'cti_ami_events_total{{node="{node}"}}'] > 10
    support = f'{{node="{node}",queue="support"}}'
    assert samples[f"cti_queue_answer_wait_seconds_count{support}"] >= 1  # the call answered
    assert samples[f"cti_queue_handle_time_seconds_count{support}"] >= 1  # and completed
    assert samples[f"cti_queue_service_level_target_seconds{support}"] == 20


@pytest.mark.asyncio
async def test_blocked_event_loop_is_detected_and_the_model_recovers(
    asterisk_node: AsteriskNode, cti_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    """The loop blocked for 8 s while a burst arrives: Asterisk drops the link (its writes time
    out), the server notices the stall, reconnects, resyncs, and no agent is left ringing."""
    client, log = ami
    settings = asterisk_node.settings
    queue_log = asterisk_node.instance.log_dir / "queue_log"
    numbers = [f"+86136{n:08d}" for n in range(10)]
    node = settings.ami.node
    link = cti_app[AMI]
    tracker = cti_app[TRACKER]
    history: list[str] = []  # the link's ups and downs and the node's resyncs, in order

    def _note(event: DomainEvent) -> None:
        if isinstance(event, AmiLinkChanged) and event.node == node:
            history.append("up" if event.connected else "down")
        elif isinstance(event, NodeResynced) and event.node == node:
            history.append("resynced")

    cti_app[BUS].listen((AmiLinkChanged, NodeResynced), _note)

    async def _first_resync() -> bool:
        return tracker.resync_count(node) >= 1

    await poll_until(_first_resync, 30, what="the resync after the first login")
    reconnects_before = link.status.reconnects
    resyncs_before = tracker.resync_count(node)
    async with sim_agents(client, "support", ["2201", "2202", "2203"]):
        placed = await asyncio.gather(
            *(
                place_customer_call(
                    client, context=settings.dialplan.inbound_context, number=number, patience=8
                )
                for number in numbers
            )
        )
        callids = {call.uniqueid for call in placed}
        await log.wait_for(
            lambda e: e.get("Event") == "AgentCalled" and e.get("Linkedid") in callids,
            15,
            "the burst under way",
        )
        history.clear()
        # the fault under test: the whole event loop blocked for 8 s while the burst arrives
        burst = block_with_ami_burst(settings.ami, 8)

        async def _asterisk_done() -> dict[str, QueueLogCall] | None:
            return all_ended(queue_log, callids)

        await poll_until(_asterisk_done, 90, interval=0.5, what="all calls ended")
        await client.wait_connected(30)

    async def _recovered() -> bool:
        return (
            link.connected
            and link.status.reconnects > reconnects_before
            and tracker.resync_count(node) > resyncs_before
        )

    try:
        await poll_until(_recovered, 60, what="reconnected and resynced")
    except AssertionError:
        raise AssertionError(
            f"after {burst}: reconnects {reconnects_before} -> {link.status.reconnects}, "
            f"resyncs {resyncs_before} -> {tracker.resync_count(node)}, link {history}"
        ) from None
    assert cti_app[WATCHDOG].stalls >= 1
    # dropped, logged in again, and the model rebuilt after that login
    assert "down" in history, history
    back = history.index("up", history.index("down"))
    assert "resynced" in history[back:], history

    async def _settled() -> bool:
        ours = [c for c in tracker.live_calls(node) if c.linkedid in callids]
        ringing = [
            a
            for a in tracker.all_agents(node)
            if a.name.startswith("sim-22") and a.state.value == "ringing"
        ]
        return not ours and not ringing

    try:
        await poll_until(_settled, 20, what="no call left open, no agent left ringing")
    except AssertionError:
        open_calls = [
            (c.linkedid, c.state) for c in tracker.live_calls(node) if c.linkedid in callids
        ]
        agents = [
            (a.name, a.state) for a in tracker.all_agents(node) if a.name.startswith("sim-22")
        ]
        raise AssertionError(f"open calls {open_calls}; agents {agents}") from None
    sessions = async_sessionmaker(cti_app[DATABASE], expire_on_commit=False)

    async def _recorded() -> dict[str, Interaction] | None:
        return await recorded_calls(sessions, callids)

    await poll_until(_recorded, 30, interval=0.3, what="every call ended in the CRM")
