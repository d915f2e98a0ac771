"""Recorded AMI traffic (shared data) through the translator and the tracker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti_server.events import AgentRinging, CallEnded, CallStarted
from tests.support.replay import RECORDINGS, load, replay

pytestmark = pytest.mark.skipif(
    not RECORDINGS.is_dir(), reason="the shared AMI recordings are not on this machine"
)

# file: (outcome, who answered, who hung up) of the one call in it
EXPECTED = {
    "simple/a_created_no_answer.json": ("ivr_only", "", ""),
    "simple/ab_a_cancel.json": ("unanswered", "", ""),
    "simple/ab_callgroup.json": ("answered", "SIP/150010002", "agent"),
    "simple/ab_callgroup_no_answer.json": ("unanswered", "", ""),
    "simple/ab_dnd.json": ("unanswered", "", ""),
    "simple/ab_reject.json": ("unanswered", "", ""),
    "simple/ab_success_a_hangup.json": ("answered", "SIP/150010002", "caller"),
    "simple/ab_success_b_hangup.json": ("answered", "SIP/150010002", "agent"),
    "queue/queue_a_cancel.json": ("abandoned", "", ""),
    "queue/queue_simple.json": ("answered", "SIP/150010002", "agent"),
    "queue/queue_group.json": ("answered", "SIP/150010002", "agent"),
    "originate/ctd-account-world-deny-a.json": ("unanswered", "", ""),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_outcome_of_each_recorded_call(name: str) -> None:
    tracker, published = replay(load(RECORDINGS / name))
    ended = [e for e in published if isinstance(e, CallEnded)]
    assert len(ended) == 1, ended
    (call,) = ended
    assert (call.outcome, call.agent, call.hung_up_by) == EXPECTED[name]
    assert not tracker.calls, "every call of a finished recording has ended"
    started = [e for e in published if isinstance(e, CallStarted)]
    assert [s.linkedid for s in started] == [call.linkedid]


def test_abandoned_queue_call_counts_in_the_queue() -> None:
    tracker, _ = replay(load(RECORDINGS / "queue/queue_a_cancel.json"))
    (stats,) = tracker.queues.values()
    assert (stats.abandoned, stats.answered, len(stats.waiting)) == (1, 0, 0)
    assert stats.abandon_rate == 1.0


def test_asterisk11_queue_call_rings_and_connects_an_agent() -> None:
    tracker, published = replay(load(RECORDINGS / "asterisk11_noisy/queue/queue_simple.json"))
    ringing = [e for e in published if isinstance(e, AgentRinging)]
    assert ringing
    assert all(e.caller_number for e in ringing)
    (stats,) = tracker.queues.values()
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
        assert not tracker.calls
