"""A server that (re)connects rebuilds its model from Asterisk's snapshot of live calls."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from cti_server.events import CallAnswered, NodeResynced
from cti_server.tracker.resync import LiveChannel, QueueEntry, reconcile
from tests.support.replay import StepClock, replay

CALLER = LiveChannel(
    uniqueid="C1",
    linkedid="C1",
    channel="PJSIP/trunk-00000001",
    state="Up",
    caller_number="+8613900000001",
    caller_name="",
    exten="100",
    application="Queue",
    application_data="support,c,,,2",
    bridge="",
    seconds=40,
)


def test_a_call_answered_while_the_server_was_away_is_answered_when_the_agent_rang() -> None:
    """Not when the server came back: the agent's side of the call is its youngest leg,
    created as their phone rang, so the wait is not swollen by the server's absence."""
    tracker, published = replay([])
    reconcile(tracker, "rec", [CALLER], [QueueEntry("support", "C1", 25, 1)], [])
    queued_at = tracker.calls[("rec", "C1")].queued_at
    assert queued_at is not None

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
    assert tracker.calls[("rec", "C1")].answered_at == answered.at
    assert tracker.queue("rec", "support").asa == answered.waited_seconds  # the live ASA too


def test_every_resync_names_the_calls_asterisk_still_has() -> None:
    """What lets the CRM close the calls that ended while no server listened."""
    tracker, published = replay([])
    other = replace(CALLER, uniqueid="C2", linkedid="C2", seconds=3)
    reconcile(tracker, "rec", [CALLER, other], [], [])

    [resynced] = [e for e in published if isinstance(e, NodeResynced)]
    assert (resynced.node, resynced.live) == ("rec", ["C1", "C2"])
