"""Scoring a call costs work in proportion to its length: each utterance is analysed once, each
window of utterances scored once and over bounded text, whether the call is scored at once, line
by line as the live watch does, or holds one very long utterance. Counted, not timed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pytest

from cti_server.complaints import ComplaintDetector, TranscriptLine
from cti_server.complaints.embeddings import Embedder
from cti_server.complaints.model import EMBEDDED_CHARACTERS, Scored, TextModel
from cti_server.complaints.text import PART_CHARACTERS
from cti_server.complaints.windows import EMBEDDED_WINDOWS
from cti_server.events import TranscriptPartial
from tests.support.complaint_watch import Watched
from tests.support.waiting import poll_until

E5_SMALL_DIMENSIONS = 384

LINES = (
    "hello I'm calling about my order from last week",
    "it still hasn't arrived and nobody called me back",
    "this is the third time I'm calling about the same thing",
    "can you tell me where the parcel is now",
    "okay thank you",
)


def conversation(customer_lines: int) -> list[TranscriptLine]:
    """The customer and the agent in turn, ``customer_lines`` of the customer's."""
    segments = []
    for i in range(customer_lines):
        start = i * 10.0
        segments.append(TranscriptLine(LINES[i % len(LINES)], start, start + 4))
        segments.append(TranscriptLine("let me check that", start + 5, start + 8, speaker="agent"))
    return segments


@pytest.fixture
def texts_scored(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the model scores (one per window), as they are scored."""
    seen: list[str] = []
    score = TextModel.score

    def counted(self: TextModel, text: str, dense: Mapping[str, float]) -> Scored:
        seen.append(text)
        return score(self, text, dense)

    monkeypatch.setattr(TextModel, "score", counted)
    return seen


@pytest.mark.parametrize("n", [10, 100, 400])
def test_each_line_is_analysed_once_and_each_window_scored_once(
    n: int, texts_scored: list[str]
) -> None:
    detector = ComplaintDetector()
    detector.detect(conversation(n))
    assert detector.parts_analysed == n
    assert len(texts_scored) == n - 2  # each full window of 3; the first, partial ones never
    longest = max(len(t) for t in LINES)
    assert max(len(t) for t in texts_scored) <= 3 * longest + 2


def test_scored_line_by_line_the_call_is_read_once_and_says_the_same(
    texts_scored: list[str],
) -> None:
    detector = ComplaintDetector()
    segments = conversation(200)
    call = detector.call()
    for segment in segments:
        call.add([segment])
        call.is_complaint()
    assert detector.parts_analysed == 200
    assert len(texts_scored) == 200
    assert call.signal() == ComplaintDetector().detect(segments)


def test_a_very_long_utterance_is_read_in_bounded_parts_with_evidence_in_place(
    texts_scored: list[str],
) -> None:
    filler = " ".join(LINES[i % 2] for i in range(400))  # 40,000 characters without a cue
    text = f"{filler} and honestly this is the third time I'm calling {filler}"
    detector = ComplaintDetector()
    signal = detector.detect([TranscriptLine(text, 0.0, 600.0)])
    assert (
        len(text) // PART_CHARACTERS <= detector.parts_analysed <= 2 * len(text) // PART_CHARACTERS
    )
    assert max(len(t) for t in texts_scored) <= 3 * PART_CHARACTERS + 2
    cue = next(e for e in signal.evidence if "third time" in e.cue)
    assert text[cue.char_start : cue.char_end] == "third time"
    assert cue.start == pytest.approx(600.0 * cue.char_start / len(text), abs=0.01)


@pytest.mark.asyncio
async def test_the_live_watch_scores_only_what_is_new() -> None:
    detector = ComplaintDetector()
    w = Watched(repeats=set(), detector=detector)
    quiet = ("hello I'd like to check my balance please", "yes the account ends in four two")
    for i in range(60):
        w.bus.publish(
            TranscriptPartial(
                node="pbx1",
                linkedid="long",
                speaker="customer",
                text=quiet[i % 2],
                final=True,
                start=i * 10.0,
                end=i * 10.0 + 4,
            )
        )

    async def _all_read() -> bool:
        return detector.parts_analysed >= 60

    await poll_until(_all_read, 30, what="every utterance read")
    await w.watch.settled()
    await w.watch.close()
    assert detector.parts_analysed == 60
    assert w.watch.alerts == 0


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts whose sentence embedding is computed, as they are (a null embedding stands
    in, so no engine is needed)."""
    seen: list[str] = []

    def counted(self: Embedder, text: str) -> npt.NDArray[np.float64]:
        seen.append(text)
        return np.zeros(E5_SMALL_DIMENSIONS)

    monkeypatch.setattr(Embedder, "embed", counted)
    return seen


def test_a_long_call_embeds_only_the_windows_the_linear_model_ranks_highest(
    embedded: list[str],
) -> None:
    quiet = ("I'd like to check my balance please", "yes the account ends in four two")
    said = [TranscriptLine(f"{quiet[i % 2]} {i}", i * 10.0, i * 10.0 + 4) for i in range(600)]
    said[300] = TranscriptLine("this is the third time I'm calling about it", 3000.0, 3004.0)
    detector = ComplaintDetector(embeddings=True)
    signal = detector.detect(said)
    assert len(embedded) <= EMBEDDED_WINDOWS
    assert any("third time" in text for text in embedded)
    assert any("third time" in e.cue for e in signal.evidence)

    call, live_embedded = detector.call(), len(embedded)
    for line in said:
        call.add([line])
        call.probability()
    assert len(embedded) - live_embedded < 50  # of 598 windows: about 4 x (1 + ln(598 / 4))
    assert call.signal() == signal


def test_a_short_call_embeds_every_window(embedded: list[str]) -> None:
    said = [TranscriptLine(text, i * 10.0, i * 10.0 + 4) for i, text in enumerate(LINES)]
    ComplaintDetector(embeddings=True).detect(said)
    assert len(embedded) == len(LINES) - 2


def test_a_window_of_long_turns_embeds_a_bounded_text(embedded: list[str]) -> None:
    long_turn = " ".join(LINES[i % len(LINES)] for i in range(200))  # about 9,000 characters
    ComplaintDetector(embeddings=True).detect([TranscriptLine(long_turn, 0.0, 600.0)])
    assert embedded
    assert all(len(text) <= EMBEDDED_CHARACTERS for text in embedded)
