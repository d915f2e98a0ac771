"""Complaints caught during the call and after it, from what the customer said and the call's facts.

During a call, each utterance the customer finishes (live transcription) is added to what they
said so far and scored: the first time the call crosses the threshold, supervisors get a
``ComplaintDetected(during_call=True)`` alert. After the call, the whole redacted transcript
and the facts (a repeat call on the same topic within 7 days, the wait, a low survey score, an
abandon after a long wait) are scored once more; a complaint is published for the recorder,
which stores the signal with the interaction and opens a case with the evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cti_server.bus import Bus
from cti_server.complaints.detector import ComplaintDetector
from cti_server.complaints.signals import CallFacts, ComplaintSignal, Evidence, Segment, Word
from cti_server.events import (
    CallEnded,
    CallTranscribed,
    ComplaintDetected,
    DomainEvent,
    SurveyAnswered,
    TranscriptPartial,
)

log = logging.getLogger(__name__)

LONG_ABANDON_SECONDS = 60.0
RepeatCall = Callable[[str, str], Awaitable[bool]]
"""``(node, linkedid)`` → did this customer call about the same topic within 7 days?"""


@dataclass
class _Call:
    said: list[Segment] = field(default_factory=list)
    alerted: bool = False
    survey: int | None = None
    ended: CallEnded | None = None


class ComplaintWatch:
    def __init__(
        self,
        bus: Bus,
        detector: ComplaintDetector,
        repeat_call: RepeatCall | None = None,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._bus = bus
        self._is_leader = is_leader  # processes sharing a node: only the leader judges its calls
        self._detector = detector
        self._repeat_call = repeat_call
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.alerts = 0
        self.detected = 0

    def attach(self) -> None:
        self._bus.listen(
            (TranscriptPartial, SurveyAnswered, CallEnded, CallTranscribed), self._on_event
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_event(self, event: DomainEvent) -> None:
        if not self._is_leader():
            return
        if isinstance(event, TranscriptPartial):
            if event.final and event.speaker == "customer" and event.text:
                call = self._calls.setdefault(event.linkedid, _Call())
                call.said.append(Segment(text=event.text, start=event.start, end=event.end))
                if not call.alerted:
                    self._spawn(self._during(event, call))
        elif isinstance(event, SurveyAnswered):
            self._calls.setdefault(event.linkedid, _Call()).survey = event.score
        elif isinstance(event, CallEnded):
            call = self._calls.setdefault(event.linkedid, _Call())
            call.ended = event
            waited = _waited(event)
            if event.outcome == "abandoned" and waited >= LONG_ABANDON_SECONDS:
                self._calls.pop(event.linkedid, None)  # no transcript will come: judge now
                facts = CallFacts(abandoned_after_wait_seconds=waited, survey_score=call.survey)
                self._spawn(self._after(event.node, event.linkedid, [], facts))
        elif isinstance(event, CallTranscribed):
            call = self._calls.pop(event.linkedid, _Call())
            segments = [_segment(s) for s in event.segments]
            self._spawn(self._judge_call(event, call, segments))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _during(self, event: TranscriptPartial, call: _Call) -> None:
        signal = await asyncio.to_thread(self._detector.detect, list(call.said))
        if signal.is_complaint and not call.alerted:
            call.alerted = True
            self.alerts += 1
            self._bus.publish(_event(event.node, event.linkedid, signal, during_call=True))

    async def _judge_call(
        self, event: CallTranscribed, call: _Call, segments: list[Segment]
    ) -> None:
        ended = call.ended
        repeat = await self._repeat_call(event.node, event.linkedid) if self._repeat_call else False
        facts = CallFacts(
            repeat_call_same_topic_7d=repeat,
            hold_seconds=_waited(ended) if ended else 0.0,
            survey_score=call.survey,
        )
        await self._after(event.node, event.linkedid, segments, facts, event.language)

    async def _after(
        self,
        node: str,
        linkedid: str,
        segments: list[Segment],
        facts: CallFacts,
        language: str | None = None,
    ) -> None:
        language = language if language in ("en", "zh") else None
        signal = await asyncio.to_thread(self._detector.detect, segments, facts, language)
        if signal.is_complaint:
            self.detected += 1
            self._bus.publish(_event(node, linkedid, signal, during_call=False))


async def _logged(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:
        log.exception("complaint detection failed")


def _waited(event: CallEnded) -> float:
    end = event.answered_at or (event.at if event.outcome == "abandoned" else None)
    if event.queued_at is None or end is None:
        return 0.0
    return max(0.0, (end - event.queued_at).total_seconds())


def _segment(stored: dict[str, Any]) -> Segment:
    words = tuple(
        Word(
            text=str(w.get("word", "")),
            start=float(w.get("start", 0.0)),
            end=float(w.get("end", 0.0)),
        )
        for w in stored.get("words", [])
    )
    return Segment(
        text=str(stored.get("text", "")),
        start=float(stored.get("start", 0.0)),
        end=float(stored.get("end", 0.0)),
        speaker=str(stored.get("speaker", "customer")),
        words=words,
    )


def _event(
    node: str, linkedid: str, signal: ComplaintSignal, *, during_call: bool
) -> ComplaintDetected:
    return ComplaintDetected(
        node=node,
        linkedid=linkedid,
        probability=round(signal.probability, 4),
        threshold=round(signal.threshold, 4),
        category=signal.category,
        severity=signal.severity,
        language=signal.language,
        evidence=[_evidence(e) for e in signal.evidence],
        during_call=during_call,
    )


def _evidence(evidence: Evidence) -> dict[str, Any]:
    return {
        "kind": evidence.kind,
        "cue": evidence.cue,
        "weight": round(float(evidence.weight), 4),
        "segment": evidence.segment,
        "char_start": evidence.char_start,
        "char_end": evidence.char_end,
        "start": evidence.start,
        "end": evidence.end,
        "text": evidence.text,
    }
