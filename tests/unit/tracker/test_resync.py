"""A server that (re)connects rebuilds its model from Asterisk's snapshot of live calls."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from panoramisk.message import Message

from cti_server.events import (
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallQueued,
    CallStarted,
    CallState,
    NodeResynced,
)
from cti_server.telephony import ami_events as ami
from cti_server.tracker.resync import (
    QueueEntry,
    reconcile,
    resync,
)
from tests.support.fakes import FakeAmiLink
from tests.support.live_channels import CALLER_IN_QUEUE as CALLER
from tests.support.live_model import (
    agent_completes,
    answered_call,
    hang_up,
    member,
    waiting_call,
)
from tests.support.replay import StepClock, replay


def test_a_call_answered_while_the_server_was_away_is_answered_when_the_agent_rang() -> None:
    """Not when the server came back: the agent's side of the call is its youngest leg,
    created as their phone rang, so the wait is not swollen by the server's absence."""
    tracker, published = replay([])
    reconcile(tracker, "rec", [CALLER], [QueueEntry("support", "C1", 25, 1)], [])
    call = tracker.call("rec", "C1")
    assert call is not None
    assert call.queued_at is not None
    queued_at = call.queued_at

    clock = tracker.clock
    assert isinstance(clock, StepClock)
    clock.now += timedelta(seconds=30)
    now = clock()
    bridged = replace(CALLER, bridge="b1", application="AppQueue", seconds=70)
    agent = replace(CALLER, uniqueid="A1", channel="PJSIP/3001-00000002", bridge="b1", seconds=12)
    reconcile(tracker, "rec", [bridged, agent], [], [])

    [answered] = [e for e in published if isinstance(e, CallAnswered)]
    assert answered.at == now - timedelta(seconds=12)
    assert answered.waited_seconds == (answered.at - queued_at).total_seconds()
    assert (call.state, call.answered_at) == (CallState.ANSWERED, answered.at)
    stats = tracker.queue_stats("rec", "support")
    assert stats is not None
    assert stats.asa == answered.waited_seconds  # the live ASA too


def test_a_call_found_waiting_starts_and_queues_as_long_ago_as_asterisk_says_once() -> None:
    """A fresh server adopts the caller through the tracker's own events: started when the
    channel was created, queued when its wait began; a second resync adds nothing."""
    tracker, published = replay([])
    now = tracker.clock()
    entry = QueueEntry("support", "C1", 25, 2)
    reconcile(tracker, "rec", [CALLER], [entry], [])
    reconcile(tracker, "rec", [CALLER], [entry], [])

    [started] = [e for e in published if isinstance(e, CallStarted)]
    [queued] = [e for e in published if isinstance(e, CallQueued)]
    assert (started.linkedid, started.caller_number, started.dialed) == (
        "C1",
        "+8613900000001",
        "100",
    )
    assert started.at == now - timedelta(seconds=40)
    assert (queued.queue, queued.position, queued.at) == ("support", 2, now - timedelta(seconds=25))
    assert [c.linkedid for c in tracker.waiting("rec", "support")] == ["C1"]
    call = tracker.call("rec", "C1")
    assert call is not None
    assert call.state == CallState.QUEUED


def test_a_call_that_ended_unseen_ends_through_the_hang_ups_of_its_channels() -> None:
    """Answered before the link dropped, gone when it came back: the tracker ends it as if its
    channels' hang-ups had been seen (one CallEnded, the agent's call over)."""
    tracker, published = replay([])
    answered_call(tracker, "rec", "C1", "support", "agent-1001")
    answered_call(tracker, "rec", "C2", "support", "agent-1002")
    still = replace(CALLER, uniqueid="C2", linkedid="C2", bridge="b2", seconds=9)
    agent_leg = replace(still, uniqueid="C2-agent", channel="PJSIP/1002-00000002")
    reconcile(tracker, "rec", [still, agent_leg], [], [])

    [ended] = [e for e in published if isinstance(e, CallEnded)]
    assert (ended.linkedid, ended.outcome, ended.agent) == ("C1", "answered", "agent-1001")
    assert tracker.call("rec", "C1") is None
    assert tracker.ended_call("rec", "C1") is not None
    assert [c.linkedid for c in tracker.live_calls("rec")] == ["C2"]
    stats = tracker.queue_stats("rec", "support")
    assert stats is not None
    assert (stats.offered, stats.answered, stats.abandoned) == (2, 2, 0)


def test_a_call_found_talking_is_answered_by_the_party_bridged_with_the_caller() -> None:
    """A fresh server finds a queue call already talking: answered by the phone in the
    caller's bridge (the first of its chain), in the queue the caller's channel is in, without
    counting an answer for a wait it never counted; when it ends, its chain names that phone."""
    tracker, published = replay([])
    now = tracker.clock()
    talking = replace(CALLER, bridge="b1", seconds=70)
    agent = replace(CALLER, uniqueid="A1", channel="PJSIP/3001-00000002", bridge="b1", seconds=12)
    reconcile(tracker, "rec", [talking, agent], [], [])

    [answered] = [e for e in published if isinstance(e, CallAnswered)]
    assert (answered.queue, answered.at) == ("support", now - timedelta(seconds=12))
    assert (answered.caller_channel, answered.agent_channel) == (CALLER.channel, agent.channel)
    call = tracker.call("rec", "C1")
    assert call is not None
    assert (call.state, call.party) == (CallState.ANSWERED, "PJSIP/3001")
    assert tracker.queue_stats("rec", "support") is None  # nothing counted: no wait was seen

    clock = tracker.clock
    assert isinstance(clock, StepClock)
    clock.now += timedelta(seconds=30)
    reconcile(tracker, "rec", [], [], [])  # both hung up while the link was down
    [ended] = [e for e in published if isinstance(e, CallEnded)]
    assert (ended.outcome, ended.queue, ended.answered_at) == ("answered", "support", answered.at)
    assert [party["party"] for party in ended.chain] == ["PJSIP/3001"]


def test_every_resync_names_the_calls_asterisk_still_has() -> None:
    """What lets the CRM close the calls that ended while no server listened."""
    tracker, published = replay([])
    other = replace(CALLER, uniqueid="C2", linkedid="C2", seconds=3)
    reconcile(tracker, "rec", [CALLER, other], [], [])

    [resynced] = [e for e in published if isinstance(e, NodeResynced)]
    assert (resynced.node, resynced.live) == ("rec", ["C1", "C2"])


def _queue_status(*members: tuple[str, str], params: dict[str, str] | None = None) -> list[Message]:
    """A QueueStatus reply as Asterisk sends it: the response, QueueParams, members, the end."""
    reply = [Message({"Response": "Success", "EventList": "start"})]
    reply.append(
        Message(
            {
                "Event": "QueueParams",
                "Queue": "support",
                "Calls": "1",
                "Holdtime": "12",
                "TalkTime": "95",
                "Completed": "40",
                "Abandoned": "5",
                "ServiceLevel": "20",
                "ServicelevelPerf": "75.0",
                **(params or {}),
            }
        )
    )
    for queue, interface in members:
        reply.append(
            Message(
                {
                    "Event": "QueueMember",
                    "Queue": queue,
                    "Name": interface,
                    "Location": interface,
                    "StateInterface": interface,
                    "Status": "1",
                    "Paused": "0",
                    "InCall": "0",
                }
            )
        )
    reply.append(Message({"Event": "QueueStatusComplete", "EventList": "Complete"}))
    return reply


def _asterisk(status: list[Message] | Message, channels: list[Message]) -> FakeAmiLink:
    """Answers the resync's two actions from canned replies."""
    return FakeAmiLink(node="rec", replies={"CoreShowChannels": channels, "QueueStatus": status})


def _no_channels() -> list[Message]:
    return [
        Message({"Response": "Success", "EventList": "start"}),
        Message({"Event": "CoreShowChannelsComplete", "EventList": "Complete"}),
    ]


@pytest.mark.asyncio
async def test_a_fresh_server_counts_from_zero_whatever_asterisk_counted() -> None:
    """Restarted against an Asterisk that served calls: app_queue's counters (40 completed,
    5 abandoned since its queues were reset, every routed heartbeat check an "abandon") are not
    the contact centre's day; the queue's figures are only what the server counts itself, the
    caller waiting now included."""
    tracker, _ = replay([])
    waiting = Message(
        {
            "Event": "CoreShowChannel",
            "Uniqueid": "C1",
            "Linkedid": "C1",
            "Channel": "PJSIP/trunk-00000001",
            "ChannelStateDesc": "Up",
            "Application": "Queue",
            "ApplicationData": "support",
            "Duration": "00:00:30",
        }
    )
    status = _queue_status()
    status.insert(
        2,
        Message({"Event": "QueueEntry", "Queue": "support", "Uniqueid": "C1", "Wait": "25"}),
    )
    channels = _no_channels()
    channels.insert(1, waiting)
    client: Any = _asterisk(status, channels)
    await resync(client, tracker, "rec")

    stats = tracker.queue_stats("rec", "support")
    assert stats is not None
    assert (stats.offered, stats.answered, stats.abandoned, stats.completed) == (1, 0, 0, 0)
    assert (stats.asa, stats.aht, stats.answered_within_sl) == (0.0, 0.0, 0)
    assert len(stats.waiting) == 1
    assert client.names() == ["CoreShowChannels", "QueueStatus"]


@pytest.mark.asyncio
async def test_a_reconnect_keeps_the_figures_the_server_counted() -> None:
    """Asterisk counts every Queue() segment; the server counts callers: a reconnect's resync
    leaves the server's figures as they were."""
    tracker, _ = replay([])
    for linkedid, agent, talk in (("C1", "agent-1001", 80), ("C2", "agent-1002", 120)):
        answered_call(tracker, "rec", linkedid, "support", agent)
        agent_completes(tracker, "rec", linkedid, talk_seconds=talk)
    waiting_call(tracker, "rec", "C3", "support")
    hang_up(tracker, "rec", "C3")  # gave up waiting
    stats = tracker.queue_stats("rec", "support")
    assert stats is not None
    counted = (stats.offered, stats.answered, stats.abandoned, stats.aht)
    assert counted == (3, 2, 1, 100.0)
    client: Any = _asterisk(_queue_status(params={"Abandoned": "21"}), _no_channels())
    await resync(client, tracker, "rec")
    assert (stats.offered, stats.answered, stats.abandoned, stats.aht) == counted


@pytest.mark.asyncio
async def test_agents_in_no_queue_any_more_are_logged_out() -> None:
    """Removed from their queues while the server was away: not left "available" forever."""
    tracker, published = replay([])
    for interface, queue in [("PJSIP/1001", "support"), ("PJSIP/1002", "support")]:
        member(tracker, "rec", queue, interface, interface)
    for queue in ("support", "sales", "billing"):  # carol left two of her three queues
        member(tracker, "rec", queue, "PJSIP/1003", "PJSIP/1003")
    status = _queue_status(("sales", "PJSIP/1002"), ("sales", "PJSIP/1003"))
    client: Any = _asterisk(status, _no_channels())
    await resync(client, tracker, "rec")

    alice, bob = tracker.agent("rec", "PJSIP/1001"), tracker.agent("rec", "PJSIP/1002")
    carol = tracker.agent("rec", "PJSIP/1003")
    assert alice is not None
    assert bob is not None
    assert carol is not None
    assert (alice.state, alice.queues) == (AgentState.LOGGED_OUT, set())
    assert (bob.state, bob.queues) == (AgentState.AVAILABLE, {"sales"})
    assert (carol.state, carol.queues) == (AgentState.AVAILABLE, {"sales"})
    assert client.names() == ["CoreShowChannels", "QueueStatus"]
    logged_out = [
        e for e in published if isinstance(e, AgentStateChanged) and e.state == "logged_out"
    ]
    assert [e.agent for e in logged_out] == ["PJSIP/1001"]


@pytest.mark.asyncio
async def test_a_failed_queue_status_logs_nobody_out() -> None:
    tracker, _ = replay([])
    tracker.apply(
        ami.QueueMemberChanged(
            node="rec",
            uniqueid="",
            linkedid="",
            queue="support",
            member="PJSIP/1001",
            interface="PJSIP/1001",
            change="added",
            paused=False,
            pause_reason="",
            in_call=False,
            device_status=1,
        )
    )
    refused = Message({"Response": "Error", "Message": "Permission denied"})
    client: Any = _asterisk(refused, _no_channels())
    await resync(client, tracker, "rec")
    alice = tracker.agent("rec", "PJSIP/1001")
    assert alice is not None
    assert alice.state == AgentState.AVAILABLE
