"""Recorded AMI traffic (shared data) through the translator and the tracker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti_server.events import AgentRinging, CallEnded, CallStarted
from tests.support.replay import RECORDINGS, load, replay

pytestmark = pytest.mark.skipif(
    not RECORDINGS.is_dir(), reason="the shared AMI recordings are not on this machine"
)

# file: (outcome, who answered, who hung up) of each call in it, in the order the calls end.
# Read from the recordings themselves: a call is answered when the caller's own dial ends
# ANSWER (through any chain of Local channels to the phone that answered), or an agent connects;
# who hung up is whichever of the caller's and the answerer's phones left its last bridge first;
# originated calls (click-to-dial "ctd", call-me-now "cmn") start with a Local channel: their
# caller side is the phone rung first (the account, or the first number for cmn).
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "simple/a_created_no_answer.json": [("ivr_only", "", "")],
    "simple/ab_a_cancel.json": [("unanswered", "", "")],
    "simple/ab_callgroup.json": [("answered", "SIP/150010002", "agent")],
    "simple/ab_callgroup_no_answer.json": [("unanswered", "", "")],
    "simple/ab_dnd.json": [("unanswered", "", "")],
    "simple/ab_reject.json": [("unanswered", "", "")],
    "simple/ab_success_a_hangup.json": [("answered", "SIP/150010002", "caller")],
    "simple/ab_success_b_hangup.json": [("answered", "SIP/150010002", "agent")],
    # 100060002 answers through a Local pair and leaves the final bridge first
    "simple/ab_success_o3.json": [("answered", "SIP/100060002", "agent")],
    # two unrelated calls at once: 260010001 out to the world (the far end leaves first), and
    # an inbound trunk call answered by 150010001 (who leaves first)
    "simple/ab_success_twoclients.json": [
        ("answered", "SIP/voipgrid-siproute-docker", "agent"),
        ("answered", "SIP/150010001", "agent"),
    ],
    "queue/queue_a_cancel.json": [("abandoned", "", "")],
    "queue/queue_simple.json": [("answered", "SIP/150010002", "agent")],
    "queue/queue_group.json": [("answered", "SIP/150010002", "agent")],
    # 150010001 answers and consults 150010002 (a second call, ended by the transfer); after
    # the transfer 150010002 leaves the caller's bridge first
    "queue/queue_attn_xfer.json": [
        ("answered", "SIP/150010002", "transfer"),
        ("answered", "SIP/150010001", "agent"),
    ],
    # 150010001 answers, blind-transfers to 150010002 (the caller's second dial, ANSWER); the
    # caller leaves the last bridge first
    "queue/queue_blind_xfer.json": [("answered", "SIP/150010001", "caller")],
    # the mobile is reached through the trunk in every case; "acceptance" asks the callee to
    # accept: the caller's dial ends NOANSWER when they reject or do not accept in time,
    # though the mobile's own leg was answered
    "mobile/simple_mobile.json": [("answered", "SIP/voipgrid-siproute-docker", "agent")],
    "mobile/acceptance_simple.json": [("answered", "SIP/voipgrid-siproute-docker", "agent")],
    "mobile/acceptance_reject.json": [("unanswered", "", "")],
    "mobile/acceptance_timeout.json": [("unanswered", "", "")],
    # two mobiles: one rejects (NOANSWER), the other accepts (ANSWER) and leaves first
    "mobile/acceptance_group_reject.json": [("answered", "SIP/voipgrid-siproute-docker", "agent")],
    # two mobiles: one is cancelled, the other answers; the caller leaves first
    "mobile/acceptance_group_pickup.json": [("answered", "SIP/voipgrid-siproute-docker", "caller")],
    # click-to-dial: 150010001 (or 201) is rung first, then the other party (who leaves first:
    # "agent" is the answering side, "caller" the calling one, the agent's phone here)
    "originate/ctd-account-account.json": [("answered", "SIP/150010002", "agent")],
    "originate/ctd-account-world.json": [("answered", "SIP/voipgrid-siproute-docker", "agent")],
    "originate/ctd-account-world-deny-a.json": [("unanswered", "", "")],  # the agent is busy
    "originate/ctd-account-world-deny-b.json": [("unanswered", "", "")],  # the customer is busy
    # the customer never signals ringing but answers; the agent (150010063) leaves first
    "originate/ctd-account-world-no-ringing.json": [
        ("answered", "SIP/voipgrid-siproute-ams", "caller")
    ],
    # 150010002 answers, consults 150010003 and transfers 150010001 to them (who stays on the
    # line, the calling side); 150010001 then leaves first
    "originate/ctd-account-account-xfer-attn-abbcac.json": [
        ("answered", "SIP/150010003", "transfer"),
        ("answered", "SIP/150010002", "caller"),
    ],
    # the customer answers; the agent consults 150010003 and transfers the customer to them;
    # the customer then leaves first
    "originate/ctd-account-world-xfer-attn-abacbc.json": [
        ("answered", "SIP/150010003", "transfer"),
        ("answered", "SIP/voipgrid-siproute-docker", "agent"),
    ],
    # call-me-now: the first number answers, then the second; the second leaves first
    "originate/cmn-world-world.json": [("answered", "SIP/voipgrid-siproute-docker", "agent")],
    # the first number answers but does not accept: the second is never dialled
    "originate/cmn-world-world-unaccepted.json": [("unanswered", "", "")],
    # an inbound call answered by 150010001, who leaves first, and an outbound one whose far
    # end leaves first
    "var_set/user_events.json": [
        ("answered", "SIP/150010001", "agent"),
        ("answered", "SIP/voipgrid-siproute-docker", "agent"),
    ],
}


def test_every_asterisk13_recording_has_an_expected_outcome() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in RECORDINGS.glob("*/*.json")}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_outcome_of_each_recorded_call(name: str) -> None:
    tracker, published = replay(load(RECORDINGS / name))
    ended = [e for e in published if isinstance(e, CallEnded)]
    assert [(c.outcome, c.agent, c.hung_up_by) for c in ended] == EXPECTED[name]
    assert not tracker.live_calls(), "every call of a finished recording has ended"
    started = [e for e in published if isinstance(e, CallStarted)]
    assert sorted(s.linkedid for s in started) == sorted(c.linkedid for c in ended)


def test_abandoned_queue_call_counts_in_the_queue() -> None:
    tracker, _ = replay(load(RECORDINGS / "queue/queue_a_cancel.json"))
    (stats,) = tracker.all_queues()
    assert (stats.abandoned, stats.answered, len(stats.waiting)) == (1, 0, 0)
    assert stats.abandon_rate == 1.0


def test_asterisk11_queue_call_rings_and_connects_an_agent() -> None:
    tracker, published = replay(load(RECORDINGS / "asterisk11_noisy/queue/queue_simple.json"))
    ringing = [e for e in published if isinstance(e, AgentRinging)]
    assert ringing
    assert all(e.caller_number for e in ringing)
    (stats,) = tracker.all_queues()
    assert stats.answered == 1


def _every_recording() -> list[Path]:
    return sorted(RECORDINGS.glob("*/*.json")) + sorted(
        RECORDINGS.glob("asterisk11_noisy/*/*.json")
    )


@pytest.mark.parametrize("path", _every_recording(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recording_replays_and_ends_its_calls(path: Path) -> None:
    tracker, published = replay(load(path))
    started = {e.linkedid for e in published if isinstance(e, CallStarted)}
    ended = {e.linkedid for e in published if isinstance(e, CallEnded)}
    if path.parent.parent.name != "asterisk11_noisy":
        assert started == ended, "a call left open after its last hang-up"
        assert not tracker.live_calls()
