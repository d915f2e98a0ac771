"""Wrap-up, agent states and queue figures follow the segments of a handed-over call."""

from __future__ import annotations

import pytest

from cti_server.events import AgentState, AgentStateChanged, CallEnded, CallTransferred
from cti_server.tracker.tracker import Tracker
from tests.support.pbx_script import NODE, Pbx


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
    assert ann_agent.linkedid == ""
    bo_on = pbx.tracker.agent("pbx1", "PJSIP/1002")
    assert bo_on is not None
    assert bo_on.linkedid == caller  # the agent grid shows Bo on the customer's call
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


def _answered_call(pbx: Pbx) -> tuple[str, str]:
    """A trunk caller whose dial Ann's phone answered, both in bridge b1."""
    caller = pbx.channel(0, "PJSIP/trunk")
    ann = pbx.channel(1, "PJSIP/1001", caller)
    pbx.dial(2, caller, ann)
    pbx.bridge(2, "b1", ann, caller)
    return caller, ann


def _told(pbx: Pbx) -> list[tuple[str, str, str, str]]:
    return [
        (e.kind, e.from_party, e.to_party, e.by)
        for e in pbx.published
        if isinstance(e, CallTransferred)
    ]


def test_a_parked_customer_taken_out_by_a_colleague_is_handed_over_their_own_call_merged() -> None:
    pbx = Pbx()
    caller, ann = _answered_call(pbx)
    pbx.blind_transfer(30, ann, caller, "700")  # Ann parks the customer (a transfer to 700)
    pbx.leave(30, "b1", caller, ann)
    pbx.hangup(30, ann)
    pbx.bridge(31, "parking-lot", caller)
    parked = {"ParkeeUniqueid": caller, "ParkeeLinkedid": caller, "ParkingSpace": "701"}
    pbx.send(31, "ParkedCall", "", ParkerDialString="PJSIP/1001", **parked)
    bo = pbx.channel(90, "PJSIP/1002", exten="701")  # Bo dials the space: a call of his own
    pbx.send(
        91,
        "UnParkedCall",
        "",
        RetrieverUniqueid=bo,
        RetrieverChannel=pbx.name(bo),
        ParkerChannel=pbx.name(ann),
        **parked,
    )
    pbx.leave(91, "parking-lot", caller)
    pbx.bridge(91, "b2", bo, caller)
    call = pbx.tracker.call(NODE, caller)
    assert call is not None
    assert call.party == "PJSIP/1002"
    pbx.hangup(150, caller, bo)
    assert _told(pbx) == [("park", "PJSIP/1001", "PJSIP/1002", "PJSIP/1001")]
    ended = {e.linkedid: e for e in pbx.published if isinstance(e, CallEnded)}
    assert ended[bo].outcome == "merged"
    assert ended[bo].merged_into == caller
    assert [(s["how"], s["party"]) for s in ended[caller].chain] == [
        ("answer", "PJSIP/1001"),
        ("park", "PJSIP/1002"),
    ]


@pytest.mark.parametrize("dest_type", ["Link", "Bridge"])
def test_an_attended_transfer_whose_bridges_are_linked_or_merged(dest_type: str) -> None:
    """Link: a Local pair joins the customer's bridge to the consultation's; Bridge with a
    BridgeMerge event: the consultation's channels move in without BridgeEnter of their own."""
    pbx = Pbx()
    caller, ann = _answered_call(pbx)
    consult = pbx.channel(20, "PJSIP/1001")
    bo = pbx.channel(20, "PJSIP/1002", consult)
    pbx.dial(21, consult, bo)
    pbx.bridge(21, "b2", consult, bo)
    if dest_type == "Link":
        near = pbx.channel(30, "Local/link@transfer;1", caller)
        far = pbx.channel(30, "Local/link@transfer;2", caller)
        pbx.leave(30, "b1", ann)
        pbx.leave(30, "b2", consult)
        pbx.bridge(30, "b1", near)
        pbx.bridge(30, "b2", far)
    else:
        pbx.leave(30, "b1", ann)
        pbx.leave(30, "b2", consult)
        pbx.send(30, "BridgeMerge", "", ToBridgeUniqueid="b1", FromBridgeUniqueid="b2")
    pbx.attended_transfer(30, ann, consult, bo, "b2", dest_type=dest_type, with_target=False)
    pbx.hangup(30, ann, consult)
    call = pbx.tracker.call(NODE, caller)
    assert call is not None
    assert call.party == "PJSIP/1002"
    pbx.hangup(80, caller)
    assert _told(pbx) == [("attended", "PJSIP/1001", "PJSIP/1002", "PJSIP/1001")]


def test_a_threeway_keeps_the_transferer_until_they_leave() -> None:
    pbx = Pbx()
    caller, ann = _answered_call(pbx)
    consult = pbx.channel(20, "PJSIP/1001")
    bo = pbx.channel(20, "PJSIP/1002", consult)
    pbx.dial(21, consult, bo)
    pbx.bridge(21, "b2", consult, bo)
    pbx.leave(30, "b2", bo)
    pbx.bridge(30, "b1", bo)  # all three in the customer's bridge
    pbx.attended_transfer(30, ann, consult, bo, "b2", dest_type="Threeway")
    call = pbx.tracker.call(NODE, caller)
    assert call is not None
    assert call.party == "PJSIP/1002"  # the target has the customer; Ann listens on
    pbx.hangup(60, caller, ann, bo, consult)
    assert [kind for kind, *_ in _told(pbx)] == ["attended"]
