"""The complaint detector on calls: explicit and implicit complaints in English and Chinese are
caught with evidence at the right words and times; neutral calls are not; call facts count.

These are about the text model, the cues and the facts: each language's calls are flagged where
its model was trained to flag them (tests/support/complaint_detectors.py); the operating point a
manager sets has tests of its own (test_complaints_operating_point.py)."""

from __future__ import annotations

import pytest

from cti_server.complaints import CallFacts, ComplaintSignal, TranscriptLine, Word
from tests.support.complaint_detectors import AsTrained


@pytest.fixture(scope="module")
def detector() -> AsTrained:
    return AsTrained()


def call(*texts: str) -> list[TranscriptLine]:
    """Customer turns 5 s apart, each 4 s long, with an agent turn between them."""
    segments = []
    for i, text in enumerate(texts):
        segments.append(
            TranscriptLine(
                "okay let me check that for you", i * 10.0 + 5, i * 10.0 + 9, speaker="agent"
            )
        )
        segments.insert(len(segments) - 1, TranscriptLine(text, i * 10.0, i * 10.0 + 4))
    return segments


def evidence_texts(signal: ComplaintSignal) -> list[str]:
    return [e.text for e in signal.evidence if e.segment is not None]


@pytest.mark.parametrize(
    ("texts", "word"),
    [
        (("I want to make a complaint about the charges on my bill",), "complaint"),
        (("this is absolutely ridiculous and unacceptable",), "ridiculous"),
        (("hi", "this is the third time I'm calling about the same thing"), "third time"),
        (("well I'd expected better from you",), "expected better"),
        (("oh never mind it doesn't matter",), "never mind"),
        (("great just great the engineer didn't show up",), "great just great"),
        (("我要投诉你们的客服",), "投诉"),
        (("这已经是第三次打电话了",), "第三次"),
        (("算了，你们看着办吧",), "算了"),
        (("说实话我太失望了",), "失望"),
    ],
)
def test_complaints_are_caught_with_the_words_that_fired(
    detector: AsTrained, texts: tuple[str, ...], word: str
) -> None:
    signal = detector.detect(call(*texts))
    assert signal.is_complaint, signal
    assert signal.severity in ("medium", "high", "critical")
    assert any(word.lower() in t.lower() for t in evidence_texts(signal)), signal.evidence


@pytest.mark.parametrize(
    "texts",
    [
        (
            "hello I'd like to check the balance on my account please",
            "thank you that's very helpful",
        ),
        ("can you tell me what time you open tomorrow", "great thanks bye"),
        ("I want to change my delivery address",),
        ("你好，我想查一下我的账单",),
        ("好的，谢谢你，服务很好",),
        ("请问你们几点下班",),
    ],
)
def test_neutral_and_happy_calls_are_not_complaints(
    detector: AsTrained, texts: tuple[str, ...]
) -> None:
    signal = detector.detect(call(*texts))
    assert not signal.is_complaint, signal
    assert signal.severity == "low"


def test_evidence_points_at_the_segment_characters_and_seconds(detector: AsTrained) -> None:
    segments = call("hello there", "this is the third time I'm calling")
    signal = detector.detect(segments)
    cue = next(e for e in signal.evidence if e.kind == "cue" and "third time" in e.text)
    assert cue.segment == 2  # the caller's index: agent turns are counted, not scored
    text = segments[2].text
    assert text[cue.char_start : cue.char_end] == "third time"
    assert cue.start is not None
    assert cue.end is not None
    assert segments[2].start <= cue.start < cue.end <= segments[2].end
    assert cue.start == pytest.approx(10 + 4 * text.index("third") / len(text), abs=0.01)


def test_word_timings_give_the_times_of_the_words_that_fired(detector: AsTrained) -> None:
    words = (
        Word("算了", 31.2, 31.8),
        Word("你们", 32.0, 32.3),
        Word("看着", 32.3, 32.6),
        Word("办", 32.6, 32.8),
        Word("吧", 32.8, 33.0),
    )
    segment = TranscriptLine(" ".join(w.text for w in words), 31.0, 33.2, words=words)
    signal = detector.detect([segment])
    give_up = [e for e in signal.evidence if e.cue.startswith("give_up")]
    assert [(e.text, e.start, e.end) for e in give_up] == [
        ("算了", 31.2, 31.8),
        ("你们 看着 办", 32.0, 32.8),
    ]
    assert signal.language == "zh"


def test_call_facts_raise_the_probability(detector: AsTrained) -> None:
    segments = call("I'm calling about my order from last week")
    plain = detector.detect(segments)
    repeat = detector.detect(segments, CallFacts(repeat_call_same_topic_7d=True))
    survey = detector.detect(segments, CallFacts(survey_score=1))
    good_survey = detector.detect(segments, CallFacts(survey_score=5))
    held = detector.detect(segments, CallFacts(hold_seconds=900, transfers_back_and_forth=3))
    assert repeat.probability > plain.probability + 0.15
    assert survey.probability > plain.probability + 0.25
    assert good_survey.probability == pytest.approx(plain.probability)
    assert held.probability > plain.probability
    assert [e.cue for e in repeat.evidence if e.kind == "fact"] == ["repeat_call_same_topic_7d"]
    assert survey.is_complaint
    assert survey.severity in ("high", "critical")
    assert held.category == "service"


def test_abandoned_call_without_words_carries_the_fact(detector: AsTrained) -> None:
    signal = detector.detect(
        [], CallFacts(abandoned_after_wait_seconds=600, repeat_call_same_topic_7d=True)
    )
    assert signal.is_complaint
    assert {e.kind for e in signal.evidence} == {"fact"}
    assert signal.category == "service"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        (
            "you charged me twice on my bill and I still have no refund, this is unacceptable",
            "billing",
        ),
        ("the parcel never arrived and the courier says it was delivered, ridiculous", "delivery"),
        ("the phone you sold me is broken, the screen stopped working after two days", "product"),
        ("your agent was so rude, she hung up on me, terrible attitude", "staff"),
        ("外卖送了两个小时才送到，骑手还送错了", "delivery"),
        ("你们又多扣了我的话费，到现在还没退款", "billing"),
    ],
)
def test_category(detector: AsTrained, text: str, category: str) -> None:
    signal = detector.detect([TranscriptLine(text, 0, 5)])
    assert signal.is_complaint
    assert signal.category == category


def test_severity_follows_escalation_and_churn(detector: AsTrained) -> None:
    legal = detector.detect([TranscriptLine("if this is not fixed I will take legal action", 0, 3)])
    churn = detector.detect(
        [TranscriptLine("just cancel my account, I'm switching to another provider", 0, 3)]
    )
    regulator = detector.detect([TranscriptLine("再不解决我就打12315投诉你们", 0, 3)])
    assert legal.severity == "critical"
    assert churn.severity in ("high", "critical")
    assert regulator.severity == "critical"


def test_only_the_customer_is_scored(detector: AsTrained) -> None:
    segments = [
        TranscriptLine(
            "I'm so sorry, that is unacceptable, the worst service", 0, 3, speaker="agent"
        ),
        TranscriptLine("okay thank you", 3, 4),
    ]
    signal = detector.detect(segments)
    assert not signal.is_complaint
    assert all(e.segment != 0 for e in signal.evidence)
