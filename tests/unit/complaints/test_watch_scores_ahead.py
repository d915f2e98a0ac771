"""A live alert follows its line at once: while the customer pauses (the same partial line
twice), the line is scored ahead, so the sentence embeddings its closing needs are ready when
it closes. Counted, not timed: no embedding is computed after the line closes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from cti_server.complaints import ComplaintDetector
from cti_server.complaints.embeddings import Embedder
from cti_server.complaints.operating_point import OperatingPoint
from tests.support.complaint_watch import Watched
from tests.support.domain_events import said
from tests.support.waiting import poll_until

E5_SMALL_DIMENSIONS = 384
SAID = "this is the third time I am calling about my parcel"


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts whose sentence embedding is computed (a null one stands in: no engine needed);
    the embedder still remembers them."""
    seen: list[str] = []

    def counted(self: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        seen.extend(texts)
        return np.zeros((len(texts), E5_SMALL_DIMENSIONS))

    monkeypatch.setattr(Embedder, "_encode", counted)
    return seen


def _every_call_a_complaint() -> Watched:
    """As ``bench/transcript_latency.py --alerts`` has it: each call flagged at its first line."""
    point = OperatingPoint(expected_rate=0.99, miss_cost=1000.0)
    return Watched(set(), detector=ComplaintDetector(embeddings=True, operating_point=point))


@pytest.mark.asyncio
async def test_a_line_the_customer_pauses_on_is_scored_before_it_closes(
    embedded: list[str],
) -> None:
    w = _every_call_a_complaint()
    for text in ("this is the third time", SAID, SAID):  # still speaking, then a pause
        w.bus.publish(replace(said("paused", "customer", text), final=False, end=0.0))

    async def _scored_ahead() -> bool:
        return bool(embedded)

    await poll_until(_scored_ahead, 30, what="the paused line scored ahead")
    assert all("parcel" in text for text in embedded), "words still changing are not scored"
    ahead = len(embedded)
    w.bus.publish(said("paused", "customer", SAID))

    async def _alerted() -> bool:
        return w.watch.alerts == 1

    await poll_until(_alerted, 30, what="the alert")
    await w.watch.close()
    assert len(embedded) == ahead, "the closed line needed no embedding of its own"
    (alert,) = w.found
    assert alert.during_call
    assert alert.linkedid == "paused"


@pytest.mark.asyncio
async def test_a_line_closed_with_other_words_than_the_pause_is_scored_on_its_own(
    embedded: list[str],
) -> None:
    w = _every_call_a_complaint()
    for _ in range(2):
        w.bus.publish(replace(said("changed", "customer", "third time"), final=False, end=0.0))

    async def _scored_ahead() -> bool:
        return bool(embedded)

    await poll_until(_scored_ahead, 30, what="the paused line scored ahead")
    w.bus.publish(said("changed", "customer", SAID))

    async def _alerted() -> bool:
        return w.watch.alerts == 1

    await poll_until(_alerted, 30, what="the alert")
    await w.watch.close()
    assert any("parcel" in text for text in embedded), "the line's own words were scored"
    (alert,) = w.found
    assert alert.during_call
