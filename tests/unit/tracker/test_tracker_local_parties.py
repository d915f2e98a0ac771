"""Who hung up when both parties are Local channels, whatever order Asterisk tells it in.

The recordings in ``tests/data/ami_live/`` are one call each of the 20-call test on Asterisk 22
(tests/integration/test_live_calls.py), as the server received them (``VarSet`` and ``Newexten``
left out): a simulated customer (``Local/s@cti-sim-caller;1``, whose ``;2`` half plays the
customer) queued in ``support`` and answered by a simulated agent (``Local/<ext>@cti-sim-agent``,
whose ``;2`` half answers itself). Neither side is a phone, so the side that leaves the bridge
first is the Local channel standing for it.

app_queue sends ``AgentComplete`` from its own Stasis subscription, not from the caller's
channel: it came 5 and 11 events before the call's last ``Hangup`` in these recordings, and
nothing keeps it before it. When it came after, the call ended with no side credited (its
Local channels were skipped as no phone) and was stored as hung up by "system" (the 20-call
test failed about one run in six so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cti_server.events import CallEnded, DomainEvent
from tests.support.replay import RECORDINGS, load, replay

LIVE = Path(__file__).resolve().parents[2] / "data" / "ami_live"

CALLER_HANGS_UP = "caller_hangs_up.json"  # COMPLETECALLER, hold 0
AGENT_HANGS_UP = "agent_hangs_up.json"  # COMPLETEAGENT, hold 9


def _load(name: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads((LIVE / name).read_text(encoding="utf-8"))
    return messages


def _agent_complete_last(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same traffic with ``AgentComplete`` after the call's last ``Hangup``."""
    (complete,) = [m for m in messages if m.get("Event") == "AgentComplete"]
    rest = [m for m in messages if m is not complete]
    last_hangup = max(i for i, m in enumerate(rest) if m.get("Event") == "Hangup")
    return [*rest[: last_hangup + 1], complete, *rest[last_hangup + 1 :]]


def _ended(published: list[DomainEvent]) -> CallEnded:
    (ended,) = [e for e in published if isinstance(e, CallEnded)]
    return ended


@pytest.mark.parametrize(
    ("name", "reason"), [(CALLER_HANGS_UP, "caller"), (AGENT_HANGS_UP, "agent")]
)
def test_recordings_are_what_they_say(name: str, reason: str) -> None:
    messages = _load(name)
    (complete,) = [m for m in messages if m.get("Event") == "AgentComplete"]
    assert complete["Reason"] == reason
    channels = {m["Channel"].rsplit("-", 1)[0] for m in messages if m.get("Event") == "Newchannel"}
    assert channels == {
        "Local/s@cti-sim-caller",
        f"Local/{complete['Interface'].split('/')[1].split('@')[0]}@cti-sim-agent",
    }
    assert all(m["Channel"].startswith("Local/") for m in messages if "Channel" in m)


@pytest.mark.parametrize("late", [False, True], ids=["as_recorded", "agent_complete_last"])
@pytest.mark.parametrize(
    ("name", "reason"), [(CALLER_HANGS_UP, "caller"), (AGENT_HANGS_UP, "agent")]
)
def test_who_hung_up_is_who_left_the_bridge_first(name: str, reason: str, late: bool) -> None:
    messages = _load(name)
    if late:
        messages = _agent_complete_last(messages)
        assert messages[-1]["Event"] == "AgentComplete"
    tracker, published = replay(messages)
    ended = _ended(published)
    assert (ended.outcome, ended.hung_up_by, ended.queue) == ("answered", reason, "support")

    call = tracker.ended_call("rec", ended.linkedid)
    assert call is not None
    (connect,) = [m for m in messages if m.get("Event") == "AgentConnect"]
    # each side is the Local channel standing for it: the caller's own leg and the agent's
    # leg the caller's dial answered
    assert (call.caller_party, call.answerer_leg) == (call.linkedid, connect["DestUniqueid"])
    assert call.hung_up_by == reason  # AgentComplete agrees, late or not


def test_agent_connect_names_the_answerer_when_no_answered_dial_is_seen() -> None:
    """A queue call whose caller's dial is not seen ending ANSWER (Asterisk 11's Dial events,
    or a DialEnd missed while the model was rebuilt) still credits the agent's side."""
    messages = [
        m
        for m in _agent_complete_last(_load(CALLER_HANGS_UP))
        if not (m.get("Event") == "DialEnd" and m.get("DialStatus") == "ANSWER")
    ]
    _, published = replay(messages)
    assert _ended(published).hung_up_by == "caller"


@pytest.mark.skipif(
    not RECORDINGS.is_dir(), reason="the shared AMI recordings are not on this machine"
)
def test_a_phone_behind_a_local_pair_answering_after_the_dial_through_it() -> None:
    """The two dials of a Local chain end in either order (each half is its own thread): the
    phone reached still answers the call, though the caller's dial through the pair ended
    ANSWER first, and the call is not left to the Local channel (optimised away early)."""
    messages = load(RECORDINGS / "simple/ab_success_o3.json")
    dial_ends = [
        i
        for i, m in enumerate(messages)
        if m.get("Event") == "DialEnd" and m.get("DialStatus") == "ANSWER"
    ]
    inner, outer = dial_ends  # ;2 -> SIP/100060002, then SIP/100060001 -> ;1
    assert messages[inner]["Channel"].endswith(";2")
    assert messages[outer]["DestChannel"].endswith(";1")
    swapped = list(messages)
    swapped[inner], swapped[outer] = messages[outer], messages[inner]
    _, published = replay(swapped)
    ended = _ended(published)
    assert (ended.outcome, ended.agent, ended.hung_up_by) == (
        "answered",
        "SIP/100060002",
        "agent",
    )
