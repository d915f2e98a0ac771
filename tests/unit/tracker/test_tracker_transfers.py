"""Hand-overs recorded on Asterisk 22 with real SIP phones (tests/integration/
test_transfers_live.py wrote tests/data/ami_transfers/), replayed: the chain of parties, how each
got the customer and from whom, who hung up, the party the live model shows before the end, and
the picker's own call merged, not recorded. Each recording is also replayed without the
``TransferTarget*``/``Transferee*`` fields, as some Asterisk 13 builds send AttendedTransfer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cti_server.events import AgentState, CallAnswered, CallEnded, CallTransferred
from tests.support.replay import replay

DATA = Path(__file__).resolve().parents[2] / "data" / "ami_transfers"

# recording -> (chain as (how, party, by), hung_up_by, CallTransferred kinds)
EXPECTED: dict[str, tuple[list[tuple[str, str, str]], str, list[str]]] = {
    "attended_atxfer.json": (
        [("answer", "PJSIP/2101", ""), ("attended", "PJSIP/2102", "PJSIP/2101")],
        "caller",
        ["attended"],
    ),
    "attended_keyed.json": (
        [("answer", "PJSIP/2111", ""), ("attended", "PJSIP/2112", "PJSIP/2111")],
        "agent",
        ["attended"],
    ),
    "blind_ami_agent.json": (
        [("answer", "PJSIP/2121", ""), ("blind", "PJSIP/2122", "PJSIP/2121")],
        "caller",
        ["blind"],
    ),
    "blind_ami_queue.json": (
        [("answer", "PJSIP/2131", ""), ("blind", "PJSIP/2132", "PJSIP/2131")],
        "agent",
        ["blind"],
    ),
    "blind_ami_ring_group.json": (
        [("answer", "PJSIP/2141", ""), ("blind", "PJSIP/2143", "PJSIP/2141")],
        "caller",
        ["blind"],
    ),
    "blind_keyed.json": (
        [("answer", "PJSIP/2151", ""), ("blind", "PJSIP/2152", "PJSIP/2151")],
        "agent",
        ["blind"],
    ),
    "blind_keyed_queue.json": (
        [("answer", "PJSIP/2221", ""), ("blind", "PJSIP/2222", "PJSIP/2221")],
        "caller",
        ["blind"],
    ),
    "blind_keyed_ring_group.json": (
        [("answer", "PJSIP/2231", ""), ("blind", "PJSIP/2232", "PJSIP/2231")],
        "agent",
        ["blind"],
    ),
    "blonde.json": (
        [("answer", "PJSIP/2161", ""), ("blonde", "PJSIP/2162", "PJSIP/2161")],
        "caller",
        ["blonde"],
    ),
    "pickup_directed.json": ([("pickup", "PJSIP/2172", "PJSIP/2172")], "caller", ["pickup"]),
    "pickup_group.json": ([("pickup", "PJSIP/2182", "PJSIP/2182")], "caller", ["pickup"]),
    "forward.json": ([("forward", "PJSIP/2192", "PJSIP/2191")], "agent", ["forward"]),
    "redirect.json": (
        [("answer", "PJSIP/2201", ""), ("redirect", "PJSIP/2202", "")],
        "caller",
        ["redirect"],
    ),
    "back_to_first_agent.json": (
        [
            ("answer", "PJSIP/2211", ""),
            ("blind", "PJSIP/2212", "PJSIP/2211"),
            ("blind", "PJSIP/2211", "PJSIP/2212"),
        ],
        "agent",
        ["blind", "blind"],
    ),
}

_TARGET_FIELDS = ("TransferTarget", "Transferee")


def _load(name: str) -> list[dict[str, Any]]:
    data = json.loads((DATA / name).read_text(encoding="utf-8"))
    return [m for m in data if isinstance(m, dict)]


def _without_target(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy as older Asterisk 13 builds send it: AttendedTransfer names no target."""
    return [
        {k: v for k, v in m.items() if not k.startswith(_TARGET_FIELDS)}
        if m.get("Event") == "AttendedTransfer"
        else m
        for m in messages
    ]


def _customer_call(published: list[Any]) -> CallEnded:
    (ended,) = [e for e in published if isinstance(e, CallEnded) and e.outcome != "merged"]
    return ended


def test_every_recording_has_an_expected_outcome() -> None:
    assert {p.name for p in DATA.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("target_fields", [True, False], ids=["asterisk22", "no-target-fields"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_chain_of_each_recorded_hand_over(name: str, target_fields: bool) -> None:
    messages = _load(name)
    if not target_fields:
        messages = _without_target(messages)
    chain, hung_up_by, kinds = EXPECTED[name]
    _, published = replay(messages)
    ended = _customer_call(published)
    assert ended.outcome == "answered"
    assert [(s["how"], s["party"], s["by"]) for s in ended.chain] == chain
    assert ended.hung_up_by == hung_up_by
    assert ended.agent == ended.chain[0]["agent"], "the answerer stays the first answerer"
    assert all(
        s["agent"] and s["extension"] == s["party"].removeprefix("PJSIP/") for s in ended.chain
    )
    told = [e for e in published if isinstance(e, CallTransferred)]
    assert [t.kind for t in told] == kinds
    for event in told:  # the target's desk is found by extension; the source is named
        segment = ended.chain[event.segment]
        assert (event.to_party, event.to_extension) == (segment["party"], segment["extension"])
        assert event.to_agent == segment["agent"]
        assert event.from_party
        assert event.from_party != event.to_party
        assert event.from_agent
        assert event.linkedid == ended.linkedid
        assert event.customer_channel.startswith("Local/s@cti-sim-caller")
        assert event.party_channel.startswith(segment["party"] + "-")
    # each segment ends where the next begins; seconds are the segment's own talk time
    for before, after in zip(ended.chain, ended.chain[1:], strict=False):
        assert before["ended_at"] <= after["started_at"]
    assert all(s["seconds"] > 0 for s in ended.chain)


def test_the_kept_copy_has_no_target_fields() -> None:
    copy = _without_target(_load("attended_atxfer.json"))
    (transfer,) = [m for m in copy if m.get("Event") == "AttendedTransfer"]
    assert not [k for k in transfer if k.startswith(_TARGET_FIELDS)]
    assert transfer["SecondBridgeUniqueid"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_live_model_shows_the_current_party_before_the_end(name: str) -> None:
    messages = _load(name)
    chain, _, _ = EXPECTED[name]
    _, published = replay(messages)
    linkedid = _customer_call(published).linkedid
    last = max(  # the customer leaves the conversation: everything before it is the call
        i
        for i, m in enumerate(messages)
        if m.get("Event") == "BridgeLeave" and m.get("Uniqueid") == linkedid
    )
    tracker, _ = replay(messages[:last])
    call = tracker.call("rec", linkedid)
    assert call is not None
    assert call.party == chain[-1][1]
    assert [segment.how for segment in call.chain] == [how for how, _, _ in chain]
    (shown,) = [c for c in tracker.snapshot()["calls"] if c["linkedid"] == linkedid]
    assert (shown["party"], shown["transfers"]) == (chain[-1][1], len(chain) - 1)
    assert shown["agent"] == call.chain[-1].agent != ""  # the wallboard: who has the customer
    agent = tracker.agent("rec", chain[-1][1])
    assert agent is not None
    if agent.state == AgentState.ON_CALL:  # not yet gone (some hang up before the customer)
        assert agent.linkedid == linkedid  # the agent grid shows the caller at the new party


@pytest.mark.parametrize("name", ["pickup_directed.json", "pickup_group.json"])
def test_a_pickers_own_call_is_merged_and_the_picker_answered(name: str) -> None:
    _, published = replay(_load(name))
    (merged,) = [e for e in published if isinstance(e, CallEnded) and e.outcome == "merged"]
    ended = _customer_call(published)
    assert merged.merged_into == ended.linkedid
    assert (merged.chain, merged.hung_up_by) == ([], "")
    (answered,) = [e for e in published if isinstance(e, CallAnswered)]
    assert answered.agent == ended.chain[0]["agent"] != ""
    (picked,) = [e for e in published if isinstance(e, CallTransferred)]
    assert picked.segment == 0
    assert picked.from_party != picked.to_party == ended.chain[0]["party"]


def test_a_transfer_to_a_queue_is_answered_once_in_each_queue() -> None:
    tracker, published = replay(_load("blind_ami_queue.json"))
    assert len([e for e in published if isinstance(e, CallAnswered)]) == 1
    figures = {q.name: (q.offered, q.answered, q.abandoned) for q in tracker.all_queues()}
    assert all(answered <= min(offered, 1) for offered, answered, _ in figures.values()), figures


@pytest.mark.parametrize("reason", ["agent", "caller", "transfer"])
def test_who_hung_up_is_the_calls_end_not_how_the_first_agents_part_ended(reason: str) -> None:
    """app_queue may say the transferer's part ended by "agent" (they hung up to complete an
    attended transfer) or "transfer": either way the customer hung up on the target."""
    messages = [
        {**m, "Reason": reason} if m.get("Event") == "AgentComplete" else m
        for m in _load("attended_atxfer.json")
    ]
    _, published = replay(messages)
    assert _customer_call(published).hung_up_by == "caller"
