"""ComplaintWatch without transcripts: an ended call judged on its facts alone, once."""

from __future__ import annotations

import pytest

from cti_server.bus import MemoryBus
from cti_server.complaints.watch import ComplaintWatch
from cti_server.events import (
    CallTranscribed,
    ComplaintDetected,
    DomainEvent,
    SurveyAnswered,
)
from tests.support.complaint_watch import DETECTOR, Watched, call_ended
from tests.support.waiting import poll_until

COMPLAINT = "this is the third time I am calling about this and honestly I had expected better"


@pytest.mark.asyncio
async def test_a_low_survey_on_a_repeat_call_is_a_complaint_without_any_transcript() -> None:
    w = Watched(repeats={"again"})
    # the caller rated 1 and hung up while the survey still ran: the score comes after the end
    w.bus.publish(call_ended("again"))
    w.bus.publish(SurveyAnswered(node="pbx1", linkedid="again", score=1))
    await poll_until(w.judged(1), 30, what="the call judged")
    # a transcript none was expected for, after all: the call stays judged once
    late = [{"speaker": "customer", "start": 1.0, "end": 4.0, "text": COMPLAINT}]
    w.bus.publish(
        CallTranscribed(
            node="pbx1", linkedid="again", language="en", mode="post_call", segments=late
        )
    )
    await w.watch.settled()
    await w.watch.close()
    assert w.watch.judged == 1

    assert [f.linkedid for f in w.found] == ["again"]
    finding = w.found[0]
    assert not finding.during_call
    assert (finding.category, finding.severity) == ("service", "high")
    cues = {e["cue"] for e in finding.evidence}
    assert cues == {"survey_score=1", "repeat_call_same_topic_7d"}
    assert all(e["kind"] == "fact" and e["segment"] is None for e in finding.evidence)


@pytest.mark.asyncio
async def test_with_the_servers_english_model_a_low_survey_alone_is_no_complaint() -> None:
    """At the default operating point, a 1 alone is no complaint with the model the server uses
    (the linear fallback without the embeddings extra scored it a complaint at its own
    threshold); with a repeat call about the same topic it is."""
    if not DETECTOR.uses_embeddings("en"):
        pytest.skip("the server's English model (the embeddings extra) is not installed")
    w = Watched(repeats={"again"})
    w.bus.publish(call_ended("again"))
    w.bus.publish(SurveyAnswered(node="pbx1", linkedid="again", score=1))
    # the first call about it: rated 1 too, but a low score alone is no complaint
    w.bus.publish(SurveyAnswered(node="pbx1", linkedid="first", score=1))
    w.bus.publish(call_ended("first"))
    await poll_until(w.judged(2), 30, what="both calls judged")
    await w.watch.close()

    assert [f.linkedid for f in w.found] == ["again"]
    assert w.found[0].probability >= w.found[0].threshold


@pytest.mark.asyncio
async def test_calls_that_cannot_be_complaints_are_not_looked_up() -> None:
    w = Watched(repeats={"happy", "silent"})
    w.bus.publish(SurveyAnswered(node="pbx1", linkedid="happy", score=5))
    w.bus.publish(call_ended("happy"))
    w.bus.publish(call_ended("silent", hung_up_by="caller"))  # no survey after the caller hung up
    await poll_until(w.judged(2), 30, what="both calls judged")
    await w.watch.close()
    assert w.found == []
    assert w.asked == [], "even a repeat call would not make these complaints"


@pytest.mark.asyncio
async def test_an_agent_ended_call_without_a_survey_is_judged_after_the_survey_wait() -> None:
    w = Watched(repeats={"quiet"}, survey_wait=0.2)
    w.bus.publish(call_ended("quiet"))
    await poll_until(w.judged(1), 30, what="the call judged once nobody rated it")
    await w.watch.close()
    assert w.found == []


@pytest.mark.asyncio
async def test_a_call_whose_transcript_comes_is_judged_once() -> None:
    bus = MemoryBus()
    found: list[DomainEvent] = []
    bus.listen((ComplaintDetected,), found.append)

    async def repeat_call(node: str, linkedid: str) -> bool:
        return True

    watch = ComplaintWatch(bus, DETECTOR, repeat_call, transcript_wait=0.3)
    watch.attach()
    transcript = [{"speaker": "customer", "start": 1.0, "end": 4.0, "text": COMPLAINT}]
    for linkedid in ("heard", "lost"):
        bus.publish(SurveyAnswered(node="pbx1", linkedid=linkedid, score=1))
        bus.publish(call_ended(linkedid))
    # "heard" is transcribed (twice: a duplicate delivery); "lost"'s transcript never comes
    for _ in range(2):
        bus.publish(
            CallTranscribed(
                node="pbx1", linkedid="heard", language="en", mode="live", segments=transcript
            )
        )

    async def _both_judged() -> bool:
        lost = any(isinstance(f, ComplaintDetected) and f.linkedid == "lost" for f in found)
        return lost and watch.judged >= 2

    # "lost" is judged on its facts once its transcript is late, when "heard"'s wait is over too
    await poll_until(_both_judged, 30, what="one call judged from its words, one on facts")
    await watch.settled()
    await watch.close()
    heard = [f for f in found if isinstance(f, ComplaintDetected) and f.linkedid == "heard"]
    assert len(heard) == 1, "judged from its transcript, not again on facts nor twice"
    assert any(e["cue"] == "survey_score=1" for e in heard[0].evidence)
    assert watch.judged == 2


@pytest.mark.asyncio
async def test_a_survey_after_the_transcript_is_still_part_of_the_judgement() -> None:
    bus = MemoryBus()
    found: list[DomainEvent] = []
    bus.listen((ComplaintDetected,), found.append)
    watch = ComplaintWatch(bus, DETECTOR)
    watch.attach()
    transcript = [{"speaker": "customer", "start": 1.0, "end": 4.0, "text": COMPLAINT}]
    bus.publish(call_ended("rated"))  # the agent hung up: a survey may follow
    bus.publish(
        CallTranscribed(
            node="pbx1", linkedid="rated", language="en", mode="live", segments=transcript
        )
    )
    bus.publish(SurveyAnswered(node="pbx1", linkedid="rated", score=1))

    async def _judged() -> bool:
        return watch.judged == 1

    await poll_until(_judged, 30, what="the call judged")
    await watch.close()
    assert len(found) == 1
    assert isinstance(found[0], ComplaintDetected)
    assert "survey_score=1" in {e["cue"] for e in found[0].evidence}
