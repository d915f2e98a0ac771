"""Queue figures with routing on count callers, not the segments app_queue sees.

The recordings in ``tests/data/ami_routed/`` are one routed call each on Asterisk 22 (the
dialplan's ``[cti-routed]``, the router withdrawing callers with ``QueueWithdrawCaller``; the
``VarSet QUEUESTATUS`` lines show why each ``Queue()`` ended). app_queue sends
``QueueCallerAbandon`` then ``QueueCallerLeave`` whenever a caller leaves a queue unanswered: on
each heartbeat check (``TIMEOUT``), on each withdraw (``WITHDRAW``), on a ring-out, and when the
caller hangs up; only in the last does the waiting channel's ``Hangup`` follow.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cti_server.events import CallAnswered, CallEnded, CallQueued, CallRouted
from cti_server.telephony.ami_events import translate
from cti_server.tracker.model import QueueStats
from cti_server.tracker.resync import QueueEntry, reconcile
from cti_server.tracker.tracker import Tracker
from tests.support.live_channels import CALLER_IN_QUEUE as CALLER_WAITING
from tests.support.replay import StepClock, replay
from tests.support.routing_centre import CALLER, NODE, Centre, member

ROUTED = Path(__file__).resolve().parents[2] / "data" / "ami_routed"


def _load(name: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads((ROUTED / name).read_text(encoding="utf-8"))
    return messages


def _figures(stats: QueueStats) -> tuple[int, int, int, int]:
    return stats.offered, stats.answered, stats.abandoned, len(stats.waiting)


def _at(messages: list[dict[str, Any]], event: str, nth: int = 1, **headers: str) -> int:
    """Index of the ``nth`` message named ``event`` with those headers: the second it is replayed
    at (the replay's clock moves one second per message)."""
    seen = 0
    for index, message in enumerate(messages):
        if message.get("Event") == event and all(message.get(k) == v for k, v in headers.items()):
            seen += 1
            if seen == nth:
                return index
    raise AssertionError(f"no {event} #{nth} {headers}")


def _queue(tracker: Tracker, name: str) -> QueueStats:
    (stats,) = [q for q in tracker.all_queues() if q.name == name]
    return stats


def test_heartbeat_checks_and_the_withdraw_are_one_wait_answered_by_the_agent() -> None:
    messages = _load("a_answered_after_checks.json")
    assert [m.get("Value") or "" for m in messages if m.get("Variable") == "QUEUESTATUS"] == [
        "",
        "TIMEOUT",
        "",
        "TIMEOUT",
        "",
        "WITHDRAW",
        "",
        "CONTINUE",
    ]
    # between two heartbeat checks: app_queue said "abandon", the caller still waits
    between = _at(messages, "QueueCallerLeave", 2, Queue="support")
    tracker, _ = replay(messages[: between + 1])
    support = _queue(tracker, "support")
    assert _figures(support) == (1, 0, 0, 1)
    assert not support.present  # not in the queue this instant: the router cannot withdraw it
    first_join = _at(messages, "QueueCallerJoin", 1, Queue="support")
    assert support.longest_wait(tracker.clock()) == between + 1 - first_join

    # ringing the agent, withdrawn from support: still waiting for support, once
    ringing = _at(messages, "AgentCalled")
    tracker, _ = replay(messages[: ringing + 1])
    assert _figures(_queue(tracker, "support")) == (1, 0, 0, 1)
    assert _figures(_queue(tracker, "agent-3005")) == (1, 0, 0, 1)

    tracker, published = replay(messages)
    support = _queue(tracker, "support")
    assert _figures(support) == (1, 1, 0, 0)
    connect = _at(messages, "AgentConnect")
    whole_wait = connect - first_join  # from the first join, not the agent queue's HoldTime 0
    assert whole_wait > support.service_level_seconds
    assert (support.asa, support.service_level, support.abandon_rate) == (whole_wait, 0.0, 0.0)
    agent_queue = _queue(tracker, "agent-3005")
    assert _figures(agent_queue) == (1, 1, 0, 0)
    assert agent_queue.service_level == 1.0  # its own short ring
    (answered,) = [e for e in published if isinstance(e, CallAnswered)]
    assert answered.waited_seconds == whole_wait
    (ended,) = [e for e in published if isinstance(e, CallEnded)]
    assert ended.outcome == "answered"
    # the router still hears of every (re)join: it sees rang-out calls come back this way
    queued = [e.queue for e in published if isinstance(e, CallQueued)]
    assert queued == ["support", "support", "support", "agent-3005"]


def test_a_caller_hanging_up_while_waiting_is_one_abandon_counted_at_the_hang_up() -> None:
    messages = _load("b_hangup_waiting.json")
    last_leave = _at(messages, "QueueCallerLeave", 3, Queue="support")
    tracker, _ = replay(messages[: last_leave + 1])
    assert _figures(_queue(tracker, "support")) == (1, 0, 0, 1)  # app_queue's word is not enough

    tracker, published = replay(messages)
    support = _queue(tracker, "support")
    assert _figures(support) == (1, 0, 1, 0)  # three segments, one caller, one abandon
    assert (support.abandon_rate, support.service_level) == (1.0, 0.0)
    (ended,) = [e for e in published if isinstance(e, CallEnded)]
    assert ended.outcome == "abandoned"


def test_a_ring_out_is_neither_answered_nor_abandoned_and_the_wait_goes_on() -> None:
    messages = _load("c_ringout_answered.json")
    back = _at(messages, "QueueCallerJoin", 2, Queue="support")
    tracker, _ = replay(messages[: back + 1])
    assert _figures(_queue(tracker, "support")) == (1, 0, 0, 1)
    assert _figures(_queue(tracker, "agent-3004")) == (1, 0, 0, 0)  # left behind, not abandoned

    tracker, published = replay(messages)
    support = _queue(tracker, "support")
    assert _figures(support) == (1, 1, 0, 0)
    first_join = _at(messages, "QueueCallerJoin", 1, Queue="support")
    assert support.asa == _at(messages, "AgentConnect") - first_join
    assert _figures(_queue(tracker, "agent-3004")) == (1, 0, 0, 0)
    assert _figures(_queue(tracker, "agent-3005")) == (1, 1, 0, 0)
    (answered,) = [e for e in published if isinstance(e, CallAnswered)]
    assert answered.queue == "agent-3005"


def test_a_caller_hanging_up_while_an_agent_rings_abandons_both_queues() -> None:
    tracker, published = replay(_load("d_hangup_ringing.json"))
    assert _figures(_queue(tracker, "support")) == (1, 0, 1, 0)
    assert _figures(_queue(tracker, "agent-3004")) == (1, 0, 1, 0)
    (ended,) = [e for e in published if isinstance(e, CallEnded)]
    assert ended.outcome == "abandoned"


def test_six_routed_callers_all_answered_count_six_offered_none_abandoned() -> None:
    """The same recorded call six times over (each its own linkedid), as a wallboard sees it."""
    call = _load("a_answered_after_checks.json")
    messages = []
    for n in range(6):
        for message in call:
            copy = {k: v.replace("00000000", f"0000000{n}") for k, v in message.items()}
            for key in ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid"):
                if key in copy:
                    copy[key] = f"{copy[key]}-{n}"
            messages.append(copy)
    tracker, _ = replay(messages)
    support = tracker.snapshot()["queues"]
    (row,) = [q for q in support if q["queue"] == "support"]
    assert (row["offered"], row["answered"], row["abandoned"], row["waiting"]) == (6, 6, 0, 0)
    assert (row["abandon_rate"], row["longest_wait"]) == (0.0, 0.0)


def _message(event: str, uniqueid: str, **headers: str) -> dict[str, str]:
    return {"Event": event, "Uniqueid": uniqueid, "Linkedid": "L1", **headers}


def test_a_caller_answered_then_transferred_back_to_the_queue_counts_once_there() -> None:
    """Without routing too: a wait ends with an answer; a transfer back to the same queue is
    the same call, neither offered nor abandoned there again (the queue counts calls)."""
    channel = {"Channel": "PJSIP/trunk-00000001", "ChannelState": "6"}
    agent = {"Interface": "PJSIP/1001", "MemberName": "Ann"}
    messages = [
        _message("Newchannel", "L1", CallerIDNum="+861", Exten="100", **channel),
        _message("QueueCallerJoin", "L1", Queue="support", Position="1", **channel),
        _message("QueueCallerLeave", "L1", Queue="support", **channel),
        _message("AgentConnect", "L1", Queue="support", HoldTime="2", **agent),
        _message("AgentComplete", "L1", Queue="support", Reason="transfer", **agent),
        _message("QueueCallerJoin", "L1", Queue="support", Position="1", **channel),
        _message("QueueCallerAbandon", "L1", Queue="support", HoldTime="1", **channel),
        _message("QueueCallerLeave", "L1", Queue="support", **channel),
        _message("Hangup", "L1", Cause="16", **channel),
    ]
    tracker, published = replay(messages)
    assert _figures(_queue(tracker, "support")) == (1, 1, 0, 0)
    (ended,) = [e for e in published if isinstance(e, CallEnded)]
    assert ended.outcome == "answered"


def test_waits_of_a_call_whose_hang_up_was_missed_end_as_abandoned_with_the_call() -> None:
    """Gone when a resync (after a reconnect) asks Asterisk: abandoned in its queue."""
    tracker, published = replay(
        [
            _message("Newchannel", "L1", Channel="PJSIP/t-1", CallerIDNum="+861", Exten="100"),
            _message("QueueCallerJoin", "L1", Channel="PJSIP/t-1", Queue="support", Position="1"),
        ]
    )
    clock = tracker.clock
    assert isinstance(clock, StepClock)
    clock.now += timedelta(seconds=5)
    reconcile(tracker, "rec", [], [], [])  # Asterisk has no channel of it any more
    assert _figures(_queue(tracker, "support")) == (1, 0, 1, 0)
    (ended,) = [e for e in published if isinstance(e, CallEnded)]
    assert (ended.linkedid, ended.outcome, ended.at) == ("L1", "abandoned", clock())


@pytest.mark.asyncio
async def test_the_router_offers_a_caller_only_while_in_the_queue_but_moves_it_between() -> None:
    centre = Centre()
    centre.sign_in("3001")
    centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER)
    centre.ami("QueueMemberPause", **member("3001"), Paused="1", PausedReason="lunch")
    centre.caller_joins("support")
    await centre.router.route_once()  # 3001 paused: the call waits
    centre.caller_leaves("support")  # a heartbeat check: out of the queue for an instant
    centre.ami("QueueMemberPause", **member("3001"), Paused="0")

    moved = centre.router.move(NODE, "c1", "3001", by="sam")  # still a waiting call
    assert (moved["moved_to"], moved["moved_by"]) == ("3001", "sam")
    await centre.router.route_once()
    assert centre.link.actions("QueueWithdrawCaller") == []  # nothing to withdraw it from

    centre.caller_joins("support")
    await centre.router.route_once()
    [offer] = centre.link.actions("QueueWithdrawCaller")
    assert offer["WithdrawInfo"].startswith("3001:")
    [routed] = centre.of(CallRouted)
    assert (routed.rule, routed.decision["moved_by"]) == ("supervisor move to agent", "sam")
    support = _queue(centre.tracker, "support")
    assert _figures(support) == (1, 0, 0, 1)


def test_a_caller_found_waiting_by_a_resync_is_offered_once_however_often_it_runs() -> None:
    """A server (re)started while a caller waits: the resync counts them from the wait Asterisk
    reports; a second resync (AMI reconnect) does not count them again."""
    tracker, _ = replay([])
    channel = replace(CALLER_WAITING, uniqueid="L1", linkedid="L1", caller_number="+861")
    entry = QueueEntry(queue="support", uniqueid="L1", wait_seconds=30, position=1)
    reconcile(tracker, "rec", [channel], [entry], [])
    reconcile(tracker, "rec", [channel], [entry], [])
    support = _queue(tracker, "support")
    assert _figures(support) == (1, 0, 0, 1)
    assert support.longest_wait(tracker.clock()) == 30

    up = {"Channel": "PJSIP/trunk-00000001", "ChannelState": "6"}
    agent = {"Interface": "Local/3005@cti-sim-agent/n", "MemberName": "sim-3005"}
    for message in (  # withdrawn, rings 3005 through agent-3005, answered
        _message("QueueCallerAbandon", "L1", Queue="support", HoldTime="30", **up),
        _message("QueueCallerLeave", "L1", Queue="support", **up),
        _message("QueueCallerJoin", "L1", Queue="agent-3005", Position="1", **up),
        _message("AgentConnect", "L1", Queue="agent-3005", HoldTime="1", **agent),
    ):
        event = translate(message, "rec")
        assert event is not None
        tracker.apply(event)
    assert _figures(support) == (1, 1, 0, 0)
    assert support.asa == 30
