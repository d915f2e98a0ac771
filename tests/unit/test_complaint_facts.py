"""Hold and transfers back and forth, read from Asterisk's events, reach the complaint detector:
a customer held ten minutes and passed back and forth is heard even if nothing was transcribed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from cti_server.complaint_facts import CallHandlingObserver, party
from cti_server.complaints.signals import CallFacts
from cti_server.events import CallHandling, DomainEvent, SurveyAnswered
from cti_server.telephony import ami_events as ami
from cti_server.telephony.ami_events import translate
from tests.support.waiting import poll_until
from tests.unit.test_complaint_watch import DETECTOR, _ended, _Watched

CALL = "1700000000.1"


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Observed:
    """An observer fed AMI messages as Asterisk sends them, at times the test sets."""

    def __init__(self) -> None:
        self.clock = _Clock()
        self.told: list[DomainEvent] = []
        self.observer = CallHandlingObserver("pbx1", self.told.append, self.clock)
        self.n = 1

    def send(self, at: float, name: str, uniqueid: str, **fields: Any) -> None:
        self.clock.now = at
        message = {"Event": name, "Uniqueid": uniqueid, "Linkedid": CALL, **fields}
        event = translate(message, "pbx1")
        assert event is not None, name
        self.observer.apply(event)

    def channel(self, at: float, device: str) -> str:
        """A new channel of the call on ``device``, as Newchannel tells it; its uniqueid."""
        uniqueid = CALL if device.startswith("PJSIP/trunk") else f"1700000000.{self.n + 1}"
        self.n += 1
        name = f"{device}-{self.n:08x}"
        self.send(at, "Newchannel", uniqueid, Channel=name, ChannelStateDesc="Ring")
        return uniqueid

    def handled(self) -> CallHandling:
        (event,) = self.told
        assert isinstance(event, CallHandling)
        return event


def test_hold_counts_after_the_answer_and_transfers_back_are_counted() -> None:
    o = _Observed()
    caller = o.channel(0, "PJSIP/trunk")
    o.send(1, "MusicOnHoldStart", caller, Channel="PJSIP/trunk-1")  # the queue's music: a wait
    o.send(60, "MusicOnHoldStop", caller, Channel="PJSIP/trunk-1")
    alice = o.channel(60, "PJSIP/1001")
    o.send(61, "BridgeEnter", alice, BridgeUniqueid="b1")
    o.send(61, "BridgeEnter", caller, BridgeUniqueid="b1")
    keeper = o.channel(100, "Local/keeper@cti-hold")  # the CTI's hold: a keeper, music
    o.send(100, "BridgeEnter", keeper, BridgeUniqueid="b1")
    o.send(100, "MusicOnHoldStart", caller, Channel="PJSIP/trunk-1")
    o.send(250, "MusicOnHoldStop", caller, Channel="PJSIP/trunk-1")
    bob = o.channel(300, "PJSIP/1002")  # blind transfer to Bob
    o.send(301, "BridgeEnter", bob, BridgeUniqueid="b2")
    again = o.channel(400, "PJSIP/1001")  # and back to Alice, on a new channel
    o.send(401, "BridgeEnter", again, BridgeUniqueid="b3")
    o.send(500, "Hangup", caller, Channel="PJSIP/trunk-1", Cause="16")
    assert o.handled() == CallHandling(
        node="pbx1",
        linkedid=CALL,
        hold_seconds=150.0,
        transfers=2,
        returns=1,
        at=o.handled().at,
    )


def test_overlapping_holds_count_once_and_a_hold_to_the_end_counts_to_the_end() -> None:
    o = _Observed()
    caller = o.channel(0, "PJSIP/trunk")
    alice = o.channel(10, "PJSIP/1001")
    o.send(10, "BridgeEnter", alice, BridgeUniqueid="b1")
    o.send(20, "Hold", alice, Channel="PJSIP/1001-2")  # the phone's hold, and its music
    o.send(20, "MusicOnHoldStart", caller, Channel="PJSIP/trunk-1")
    o.send(50, "MusicOnHoldStop", caller, Channel="PJSIP/trunk-1")
    o.send(60, "Unhold", alice, Channel="PJSIP/1001-2")
    o.send(100, "MusicOnHoldStart", caller, Channel="PJSIP/trunk-1")
    o.send(130, "Hangup", caller, Channel="PJSIP/trunk-1", Cause="16")
    handled = o.handled()
    assert (handled.hold_seconds, handled.transfers, handled.returns) == (70.0, 0, 0)


def test_an_attended_transfers_target_is_a_party_and_unanswered_calls_tell_nothing() -> None:
    o = _Observed()
    caller = o.channel(0, "PJSIP/trunk")
    alice = o.channel(10, "PJSIP/1001")
    o.send(10, "BridgeEnter", alice, BridgeUniqueid="b1")
    bob = o.channel(20, "PJSIP/1002")  # Alice's consultation call: Bob's own linkedid
    o.send(
        30,
        "AttendedTransfer",
        alice,
        Result="Success",
        OrigTransfererUniqueid=alice,
        OrigTransfererLinkedid=CALL,
        SecondTransfererUniqueid="1700000000.9",
        TransferTargetUniqueid=bob,
    )
    o.send(90, "Hangup", caller, Channel="PJSIP/trunk-1", Cause="16")
    assert (o.handled().transfers, o.handled().returns) == (1, 0)

    abandoned = _Observed()
    waiting = abandoned.channel(0, "PJSIP/trunk")
    abandoned.send(1, "MusicOnHoldStart", waiting, Channel="PJSIP/trunk-1")
    abandoned.send(90, "Hangup", waiting, Channel="PJSIP/trunk-1", Cause="16")
    assert abandoned.told == []


def test_hold_events_are_translated() -> None:
    for name, held, source in (
        ("Hold", True, "hold"),
        ("Unhold", False, "hold"),
        ("MusicOnHoldStart", True, "music"),
        ("MusicOnHoldStop", False, "music"),
    ):
        event = translate(
            {"Event": name, "Uniqueid": "1.2", "Linkedid": "1.1", "Channel": "PJSIP/a-1"}, "n"
        )
        assert event == ami.ChannelHeld(
            node="n", uniqueid="1.2", linkedid="1.1", channel="PJSIP/a-1", held=held, source=source
        )
    assert party("PJSIP/1001-0000002a") == "PJSIP/1001"
    assert party("Local/keeper@cti-hold-00000001;1") == ""


@pytest.mark.asyncio
async def test_a_long_hold_and_transfers_back_make_a_poorly_rated_call_a_complaint() -> None:
    """A 2 alone is no complaint; with ten minutes on hold and passed back twice it is, and
    the case says why. The queue wait stays a fact of its own."""
    w = _Watched(repeats=set())
    for linkedid, handling in (("plain", None), ("bounced", (700.0, 3, 2))):
        w.bus.publish(SurveyAnswered(node="pbx1", linkedid=linkedid, score=2))
        ended = _ended(linkedid, hung_up_by="caller")
        w.bus.publish(ended)
        if handling is not None:  # told as the customer's channel hangs up
            hold, transfers, returns = handling
            w.bus.publish(
                CallHandling(
                    node="pbx1",
                    linkedid=linkedid,
                    hold_seconds=hold,
                    transfers=transfers,
                    returns=returns,
                )
            )
    await poll_until(w.judged(2), 30, what="both calls judged")
    await w.watch.close()
    assert [f.linkedid for f in w.found] == ["bounced"]
    cues = {e["cue"] for e in w.found[0].evidence}
    assert {"hold_seconds=700", "transfers_back_and_forth=2"} <= cues


@pytest.mark.asyncio
async def test_the_queue_wait_is_its_own_fact_not_a_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[CallFacts] = []
    detect = DETECTOR.detect

    def spied(segments: Any, facts: CallFacts | None = None, language: Any = None) -> Any:
        if facts is not None:
            seen.append(facts)
        return detect(segments, facts, language)

    monkeypatch.setattr(DETECTOR, "detect", spied)
    w = _Watched(repeats=set())
    ended = _ended("waited", hung_up_by="caller")
    w.bus.publish(replace(ended, queued_at=ended.arrived_at - timedelta(seconds=700)))
    w.bus.publish(
        CallHandling(node="pbx1", linkedid="waited", hold_seconds=42.0, transfers=1, returns=0)
    )
    await poll_until(w.judged(1), 30, what="the call judged")
    await w.watch.close()
    assert seen
    assert {(f.queue_wait_seconds, f.hold_seconds, f.transfers_back_and_forth) for f in seen} == {
        (722.0, 42.0, 0)
    }
