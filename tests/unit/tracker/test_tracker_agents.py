"""Agents as a state machine: wrap-up after a queue call, handle time, illegal steps survived."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from cti_server.events import AgentState, AgentStateChanged, DomainEvent
from cti_server.telephony import ami_events as ami
from cti_server.tracker.tracker import Tracker
from tests.support.replay import StepClock

NODE = "pbx1"
PHONE = "PJSIP/1001"
IDS = {"node": NODE, "uniqueid": "1.1", "linkedid": "1.1"}
MEMBER = {"queue": "support", "member": "Alice", "interface": PHONE}


def _status(device: int, *, paused: bool = False, wrapup: int = 0) -> ami.QueueMemberChanged:
    return ami.QueueMemberChanged(
        **{**IDS, "uniqueid": "", "linkedid": ""},
        **MEMBER,
        change="status",
        paused=paused,
        pause_reason="lunch" if paused else "",
        in_call=device == 2,
        device_status=device,
        wrapup_seconds=wrapup,
    )


def _connected() -> ami.AgentConnected:
    return ami.AgentConnected(**IDS, **MEMBER, hold_seconds=5, ring_seconds=2, dest_uniqueid="1.2")


def _completed(talk: int = 60) -> ami.AgentCompleted:
    return ami.AgentCompleted(**IDS, **MEMBER, talk_seconds=talk, reason="caller")


def _tracker(wrapup: int) -> tuple[Tracker, StepClock, list[DomainEvent]]:
    published: list[DomainEvent] = []
    clock = StepClock()
    tracker = Tracker(published.append, clock=clock, wrapup_times={"support": wrapup})
    return tracker, clock, published


def _state(tracker: Tracker) -> AgentState:
    agent = tracker.agent(NODE, PHONE)
    assert agent is not None, f"no agent {PHONE}"
    return agent.state


def _states(published: list[DomainEvent]) -> list[str]:
    return [e.state for e in published if isinstance(e, AgentStateChanged)]


def _take_a_call(tracker: Tracker, talk: int = 60) -> None:
    tracker.apply(_status(1))
    tracker.apply(_connected())
    tracker.apply(_status(2))
    tracker.apply(_completed(talk))


def test_after_a_queue_call_the_agent_wraps_up_for_the_queues_time() -> None:
    tracker, clock, published = _tracker(wrapup=30)
    _take_a_call(tracker)
    assert _state(tracker) == AgentState.WRAP_UP
    tracker.apply(_status(1))  # the phone is idle: app_queue still holds calls back
    assert _state(tracker) == AgentState.WRAP_UP
    clock.now += timedelta(seconds=29)
    assert tracker.snapshot()["agents"][0]["state"] == "wrap_up"
    clock.now += timedelta(seconds=2)
    assert tracker.snapshot()["agents"][0]["state"] == "available"
    assert _states(published) == ["available", "on_call", "wrap_up", "available"]


def test_the_wrapup_time_asterisk_gives_the_member_wins() -> None:
    tracker, clock, _ = _tracker(wrapup=30)
    tracker.apply(_status(1, wrapup=5))
    tracker.apply(_connected())
    tracker.apply(_completed())
    clock.now += timedelta(seconds=6)
    tracker.apply(_status(1))  # any event after the end of the wrap-up ends it
    assert _state(tracker) == AgentState.AVAILABLE


def test_without_a_wrapup_time_the_agent_is_available_at_once() -> None:
    tracker, _, published = _tracker(wrapup=0)
    _take_a_call(tracker)
    assert _state(tracker) == AgentState.AVAILABLE
    assert "wrap_up" not in _states(published)


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (_status(6), AgentState.RINGING),  # Asterisk rings the agent again
        (_status(1, paused=True), AgentState.PAUSED),
        (_status(5), AgentState.LOGGED_OUT),  # the phone went away
    ],
)
def test_asterisk_ends_a_wrapup_early(event: ami.QueueMemberChanged, state: AgentState) -> None:
    tracker, clock, _ = _tracker(wrapup=30)
    _take_a_call(tracker)
    tracker.apply(event)
    assert _state(tracker) == state
    clock.now += timedelta(seconds=60)  # the wrap-up's end no longer moves the agent
    assert tracker.snapshot()["agents"][0]["state"] == state.value


@pytest.mark.asyncio
async def test_a_timer_ends_the_wrapup_when_no_event_comes() -> None:
    """A quiet centre: nothing else happens, the agent still becomes available on time."""
    available = asyncio.Event()

    def publish(event: DomainEvent) -> None:
        if isinstance(event, AgentStateChanged) and event.state == "available":
            available.set()

    tracker = Tracker(publish, wrapup_times={"support": 1})
    tracker.apply(_status(1))
    tracker.apply(_connected())
    tracker.apply(_completed())
    assert _state(tracker) == AgentState.WRAP_UP
    available.clear()
    await asyncio.wait_for(available.wait(), 10)
    assert _state(tracker) == AgentState.AVAILABLE


def test_aht_is_the_average_talk_time_of_completed_calls() -> None:
    tracker, _, _ = _tracker(wrapup=0)
    _take_a_call(tracker, talk=100)
    _take_a_call(tracker, talk=200)
    stats = tracker.queue_stats(NODE, "support")
    assert stats is not None
    assert stats.completed == 2
    assert stats.aht == 150.0
    (queue,) = tracker.snapshot()["queues"]
    assert queue["aht"] == 150.0


def test_an_illegal_transition_is_logged_and_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """An AgentComplete for an agent already logged out (a late event) changes nothing."""
    tracker, _, published = _tracker(wrapup=30)
    tracker.apply(_status(1))
    tracker.apply(_status(5))  # logged out (device unavailable)
    with caplog.at_level(logging.INFO, logger="cti_server.tracker.model"):
        tracker.apply(_completed())
    assert _state(tracker) == AgentState.LOGGED_OUT
    assert any(
        "ignored illegal transition of agent Alice: logged_out -> wrap_up" in r.getMessage()
        for r in caplog.records
    )
    tracker.apply(_status(1))  # and the tracker goes on
    assert _state(tracker) == AgentState.AVAILABLE
    assert _states(published)[-1] == "available"
