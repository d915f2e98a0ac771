"""Wrap-up, agent states and queue figures follow the segments of a handed-over call."""

from __future__ import annotations

from cti_server.events import AgentStateChanged, CallEnded
from cti_server.tracker.model import AgentState
from cti_server.tracker.tracker import Tracker
from tests.support.pbx_script import Pbx


def _member(pbx: Pbx, at: float, device: str, name: str) -> None:
    pbx.send(
        at,
        "QueueMemberAdded",
        "",
        Queue="support",
        MemberName=name,
        Interface=device,
        Status="1",
        Paused="0",
    )


def _queue_call_answered_by_ann(pbx: Pbx) -> tuple[str, str]:
    caller = pbx.channel(0, "PJSIP/trunk")
    pbx.send(1, "QueueCallerJoin", caller, Queue="support", Position="1")
    ann = pbx.channel(5, "PJSIP/1001", caller)
    pbx.dial(6, caller, ann)
    pbx.send(6, "QueueCallerLeave", caller, Queue="support")
    pbx.send(
        6,
        "AgentConnect",
        caller,
        Queue="support",
        MemberName="Ann",
        Interface="PJSIP/1001",
        HoldTime="5",
        DestUniqueid=ann,
    )
    pbx.bridge(6, "b1", ann, caller)
    return caller, ann


def test_the_agent_who_took_a_call_by_transfer_wraps_up_after_their_part() -> None:
    pbx = Pbx()
    pbx.tracker = Tracker(pbx.published.append, clock=lambda: pbx.now, wrapup_times={"support": 30})
    _member(pbx, 0, "PJSIP/1001", "Ann")
    _member(pbx, 0, "PJSIP/1002", "Bo")
    caller, ann = _queue_call_answered_by_ann(pbx)
    pbx.blind_transfer(60, ann, caller, "1002")
    pbx.leave(60, "b1", caller, ann)
    pbx.send(
        60,
        "AgentComplete",
        caller,
        Queue="support",
        MemberName="Ann",
        Interface="PJSIP/1001",
        TalkTime="54",
        Reason="transfer",
    )
    pbx.hangup(60, ann)
    bo = pbx.channel(61, "PJSIP/1002", caller)
    pbx.dial(62, caller, bo)
    pbx.bridge(62, "b2", bo, caller)
    ann_agent = pbx.tracker.agent("pbx1", "PJSIP/1001")
    assert ann_agent is not None
    assert ann_agent.state == AgentState.WRAP_UP  # her part is over: app_queue said so
    pbx.hangup(150, caller, bo)
    bo_agent = pbx.tracker.agent("pbx1", "PJSIP/1002")
    assert bo_agent is not None
    assert bo_agent.state == AgentState.WRAP_UP, "the transfer's target wraps up too"
    assert bo_agent.wrapup_until is not None
    assert (bo_agent.wrapup_until - pbx.now).total_seconds() == 30
    told = [(e.agent, e.state) for e in pbx.published if isinstance(e, AgentStateChanged)]
    assert ("Bo", "wrap_up") in told
    (ended,) = [e for e in pbx.published if isinstance(e, CallEnded)]
    assert [(s["agent"], s["seconds"]) for s in ended.chain] == [("Ann", 54.0), ("Bo", 88.0)]
    stats = pbx.tracker.queue_stats("pbx1", "support")
    assert stats is not None
    assert (stats.offered, stats.answered, stats.completed, stats.aht) == (1, 1, 1, 54.0)


def test_no_wrap_up_without_a_wrap_up_time() -> None:
    pbx = Pbx()
    _member(pbx, 0, "PJSIP/1001", "Ann")
    _member(pbx, 0, "PJSIP/1002", "Bo")
    caller, ann = _queue_call_answered_by_ann(pbx)
    pbx.blind_transfer(60, ann, caller, "1002")
    pbx.leave(60, "b1", caller, ann)
    pbx.hangup(60, ann)
    bo = pbx.channel(61, "PJSIP/1002", caller)
    pbx.dial(62, caller, bo)
    pbx.bridge(62, "b2", bo, caller)
    pbx.hangup(150, caller, bo)
    bo_agent = pbx.tracker.agent("pbx1", "PJSIP/1002")
    assert bo_agent is not None
    assert bo_agent.state != AgentState.WRAP_UP
