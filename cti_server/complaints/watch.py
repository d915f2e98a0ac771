"""Complaints caught during the call and after it, from what the customer said and the call's facts.

During a call, each utterance the customer finishes (live transcription) is added to the call's
score (:class:`~.detector.CallScore`: only the new utterance is analysed, so a call costs time
in proportion to its length): the first time the call crosses the threshold, supervisors get a
``ComplaintDetected(during_call=True)`` alert. After the call, the whole redacted transcript
and the facts (a repeat call on the same topic within 7 days, the queue wait, the agent's hold
and transfers back and forth as ``CallHandling`` tells them, a low survey score, an abandon
after a long wait) are scored once more; a complaint is published for the recorder,
which stores the signal with the interaction and opens a case with the evidence.

Every ended call is judged once. A call no transcript will come for (not answered, transcription
off, no speech model) is judged on its facts alone once it ends: a survey answered after the
agent hung up may reach us after ``CallEnded`` (the caller rates, then hangs up while the
survey still runs), so a call the agent hung up waits a few seconds for it. A call whose
transcript is expected waits for ``CallTranscribed`` (``mode="failed"`` when none could be
made: judged on the facts then); one that never comes leaves the call judged on its facts after
``transcript_wait`` seconds, and a transcript later than that is not judged again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.interactions import repeat_contact
from cti_server.bus import Bus
from cti_server.complaints.detector import CallScore, ComplaintDetector
from cti_server.complaints.signals import CallFacts, ComplaintSignal, Evidence, TranscriptLine, Word
from cti_server.events import (
    CallEnded,
    CallHandling,
    CallKey,
    CallTranscribed,
    ComplaintDetected,
    DomainEvent,
    InteractionRecorded,
    SurveyAnswered,
    TranscriptPartial,
)

log = logging.getLogger(__name__)

SURVEY_WAIT_SECONDS = 10.0
"""How long a call the agent hung up waits for its survey before it is judged on facts."""
TRANSCRIPT_WAIT_SECONDS = 600.0
"""How long an ended call waits for its transcript before it is judged on its facts alone."""
RECORDED_WAIT_SECONDS = 30.0
"""How long the repeat-call check waits for the recorder to write the ended call."""
MAX_CALLS = 10000  # calls followed (or remembered as judged) at once, the oldest forgotten
RepeatCall = Callable[[str, str], Awaitable[bool]]
"""``(node, linkedid)`` → did this customer call about the same topic within 7 days?"""
TranscriptExpected = Callable[[CallEnded], bool]
"""Will a ``CallTranscribed`` come for this ended call?"""


def answered(ended: CallEnded) -> bool:
    """Transcripts come for answered calls (the default when no transcription is known)."""
    return ended.answered_at is not None


@dataclass
class CallSoFar:
    """What the watch has heard of one call until it is judged.

    While the call runs, what the customer says is scored as it comes: each utterance added to
    the call's score once (``score``, kept up to date by one thread at a time, under
    ``scoring``), so a long call costs time in proportion to its length, not its square.
    """

    said: list[TranscriptLine] = field(default_factory=list)
    scored: int = 0  # of ``said``, added to ``score``
    score: CallScore | None = None
    scoring: asyncio.Lock = field(default_factory=asyncio.Lock)
    alerted: bool = False
    survey: int | None = None
    surveyed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: CallEnded | None = None
    handling: CallHandling | None = None  # hold and transfers, told as the customer hangs up
    deadline: asyncio.TimerHandle | None = None  # for the transcript, while one is expected


class ComplaintWatch:
    def __init__(
        self,
        bus: Bus,
        detector: ComplaintDetector,
        repeat_call: RepeatCall | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        *,
        transcript_expected: TranscriptExpected = answered,
        survey_wait: float = SURVEY_WAIT_SECONDS,
        transcript_wait: float = TRANSCRIPT_WAIT_SECONDS,
    ) -> None:
        self._bus = bus
        self._is_leader = is_leader  # processes sharing a node: only the leader judges its calls
        self._detector = detector
        self._repeat_call = repeat_call
        self._transcript_expected = transcript_expected
        self._survey_wait = survey_wait
        self._transcript_wait = transcript_wait
        self._calls: dict[str, CallSoFar] = {}
        self._judged: dict[str, None] = {}  # linkedids judged lately, oldest first
        self._tasks: set[asyncio.Task[None]] = set()
        self.alerts = 0
        self.judged = 0
        self.detected = 0

    @property
    def detector(self) -> ComplaintDetector:
        return self._detector

    def attach(self) -> None:
        self._bus.listen(
            (TranscriptPartial, SurveyAnswered, CallHandling, CallEnded, CallTranscribed),
            self._on_event,
        )

    async def settled(self) -> None:
        """Until the work under way (judgements, alerts) is done; transcripts awaited are not."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for call in self._calls.values():
            if call.deadline is not None:
                call.deadline.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_event(self, event: DomainEvent) -> None:
        if not self._is_leader() or getattr(event, "linkedid", None) in self._judged:
            return  # processes sharing a node: only the leader judges; each call once
        if isinstance(event, TranscriptPartial):
            if event.final and event.speaker == "customer" and event.text:
                call = self._call(event.linkedid)
                call.said.append(TranscriptLine(text=event.text, start=event.start, end=event.end))
                if not call.alerted:
                    self._spawn(self._during(event, call))
        elif isinstance(event, CallHandling):
            self._call(event.linkedid).handling = event
        elif isinstance(event, SurveyAnswered):
            call = self._call(event.linkedid)
            call.survey = event.score
            call.surveyed.set()
        elif isinstance(event, CallEnded):
            call = self._call(event.linkedid)
            call.ended = event
            if self._transcript_expected(event):
                call.deadline = asyncio.get_running_loop().call_later(
                    self._transcript_wait, self._transcript_late, event.linkedid
                )
            else:
                self._spawn(self._on_facts(event, call))
        elif isinstance(event, CallTranscribed):
            self._spawn(self._on_transcript(event))

    def _call(self, linkedid: str) -> CallSoFar:
        call = self._calls.get(linkedid)
        if call is None:
            if len(self._calls) >= MAX_CALLS:  # calls whose end we never saw
                self._claim(next(iter(self._calls)))
            call = self._calls[linkedid] = CallSoFar()
        return call

    def _claim(self, linkedid: str) -> CallSoFar | None:
        """The call to judge now, once: None when it was judged already."""
        if linkedid in self._judged:
            return None
        self._judged[linkedid] = None
        if len(self._judged) > MAX_CALLS:
            del self._judged[next(iter(self._judged))]
        call = self._calls.pop(linkedid, None) or CallSoFar()
        if call.deadline is not None:
            call.deadline.cancel()
        return call

    def _transcript_late(self, linkedid: str) -> None:
        call = self._claim(linkedid)
        if call is not None and call.ended is not None:
            log.warning("call %s: no transcript came, judged on its facts alone", linkedid)
            self._spawn(self._judge_facts(call.ended, call))

    async def _on_facts(self, ended: CallEnded, call: CallSoFar) -> None:
        """No transcript will come: judge the facts once the survey has come."""
        await self._survey_of(call)
        if self._claim(ended.linkedid) is not None:
            await self._judge_facts(ended, call)

    async def _on_transcript(self, event: CallTranscribed) -> None:
        call = self._calls.get(event.linkedid)
        if call is not None:
            await self._survey_of(call)
        claimed = self._claim(event.linkedid)
        if claimed is not None:
            await self._judge_call(event, claimed, [_segment(s) for s in event.segments])

    async def _survey_of(self, call: CallSoFar) -> None:
        """A survey after the agent hung up has a few seconds to arrive: the caller may hang
        up (ending the call) before the survey step is over and publishes the score."""
        ended = call.ended
        if ended is not None and call.survey is None and ended.hung_up_by == "agent":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._survey_wait):
                    await call.surveyed.wait()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _during(self, event: TranscriptPartial, call: CallSoFar) -> None:
        """What was said since the last scoring, added to the call's score; an alert the first
        time the call is a complaint."""
        async with call.scoring:
            if call.alerted or call.scored == len(call.said):
                return  # alerted already, or an earlier turn scored this line with its own
            new, call.scored = call.said[call.scored :], len(call.said)
            if call.score is None:
                call.score = self._detector.call()
            scoring = time.perf_counter()
            signal = await asyncio.to_thread(_heard, call.score, new)
            scored = time.perf_counter() - scoring
        if signal is not None and not call.alerted:
            call.alerted = True
            self.alerts += 1
            alert = _event(event.node, event.linkedid, signal, during_call=True)
            self._bus.publish(alert)
            log.info(  # where an alert's time goes (bench/transcript_latency.py reads it)
                "call %s: complaint alert published %.0f ms after the customer's line %d"
                " (scored in %.0f ms)",
                event.linkedid,
                1000 * (alert.at - event.at).total_seconds(),
                call.scored,
                1000 * scored,
                extra={
                    "alert_linkedid": event.linkedid,
                    "alert_line": call.scored,
                    "line_published": event.at.isoformat(),
                    "alert_published": alert.at.isoformat(),
                },
            )

    async def _judge_call(
        self, event: CallTranscribed, call: CallSoFar, segments: list[TranscriptLine]
    ) -> None:
        repeat = await self._repeat(event.node, event.linkedid)
        facts = replace(_facts(call), repeat_call_same_topic_7d=repeat)
        await self._after(event.node, event.linkedid, segments, facts, event.language)

    async def _judge_facts(self, ended: CallEnded, call: CallSoFar) -> None:
        """The facts alone, scored as a call where nothing was heard. The CRM is asked about
        a repeat call only when one could tip the call into a complaint."""
        facts = _facts(call)
        if_repeat = replace(facts, repeat_call_same_topic_7d=True)
        signal = await asyncio.to_thread(self._detector.detect, [], if_repeat)
        if not signal.is_complaint:
            self.judged += 1
            return
        repeat = await self._repeat(ended.node, ended.linkedid)
        await self._after(
            ended.node, ended.linkedid, [], replace(facts, repeat_call_same_topic_7d=repeat)
        )

    async def _repeat(self, node: str, linkedid: str) -> bool:
        return await self._repeat_call(node, linkedid) if self._repeat_call else False

    async def _after(
        self,
        node: str,
        linkedid: str,
        segments: list[TranscriptLine],
        facts: CallFacts,
        language: str | None = None,
    ) -> None:
        language = language if language in ("en", "zh") else None
        signal = await asyncio.to_thread(self._detector.detect, segments, facts, language)
        self.judged += 1
        if signal.is_complaint:
            self.detected += 1
            self._bus.publish(_event(node, linkedid, signal, during_call=False))


def _heard(score: CallScore, lines: list[TranscriptLine]) -> ComplaintSignal | None:
    """``lines`` added to the call's score; its signal when the call is a complaint."""
    score.add(lines)
    return score.signal() if score.is_complaint() else None


async def _logged(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:
        log.exception("complaint detection failed")


class RecordedCalls:
    """The calls the recorder has written as ended, as it says (``InteractionRecorded``): a
    question about a call's history waits for the recorder's word, not for a database poll."""

    def __init__(self, bus: Bus, limit: int = MAX_CALLS) -> None:
        self._ended: OrderedDict[CallKey, asyncio.Event] = OrderedDict()
        self._limit = limit
        bus.listen((InteractionRecorded,), self._on_recorded)

    def _on_recorded(self, event: DomainEvent) -> None:
        if isinstance(event, InteractionRecorded) and event.ended:
            self._flag(CallKey.of(event)).set()

    def _flag(self, key: CallKey) -> asyncio.Event:
        flag = self._ended.get(key)
        if flag is None:
            flag = self._ended[key] = asyncio.Event()
            while len(self._ended) > self._limit:  # calls whose write we never heard of
                self._ended.popitem(last=False)
        return flag

    async def ended(self, key: CallKey, wait: float) -> bool:
        """Whether the recorder has written the call as ended, waiting up to ``wait`` s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._flag(key).wait()
        return self._flag(key).is_set()


def crm_repeat_call(
    sessions: async_sessionmaker[AsyncSession],
    recorded: RecordedCalls,
    wait: float = RECORDED_WAIT_SECONDS,
) -> RepeatCall:
    """:data:`RepeatCall` from the CRM, once the recorder has written the ended call (its
    customer, the IVR's intent): judged on facts, a call is asked about as soon as it ends."""

    async def repeat_call(node: str, linkedid: str) -> bool:
        key = CallKey(node, linkedid)
        if not await recorded.ended(key, wait):
            log.debug("call %s: not written as ended in %.0f s; asked anyway", key, wait)
        async with sessions() as session:
            return await repeat_contact(session, str(key))

    return repeat_call


def _facts(call: CallSoFar) -> CallFacts:
    """What the call itself says: its wait (in the queue, or an abandon), the agent's hold and
    transfers back and forth, its survey."""
    ended = call.ended
    if ended is None:
        return CallFacts(survey_score=call.survey)
    waited = _waited(ended)
    if ended.outcome == "abandoned":
        return CallFacts(abandoned_after_wait_seconds=waited, survey_score=call.survey)
    handling = call.handling
    return CallFacts(
        queue_wait_seconds=waited,
        hold_seconds=handling.hold_seconds if handling else 0.0,
        transfers_back_and_forth=handling.returns if handling else 0,
        survey_score=call.survey,
    )


def _waited(event: CallEnded) -> float:
    end = event.answered_at or (event.at if event.outcome == "abandoned" else None)
    if event.queued_at is None or end is None:
        return 0.0
    return max(0.0, (end - event.queued_at).total_seconds())


def _segment(stored: dict[str, Any]) -> TranscriptLine:
    words = tuple(
        Word(
            text=str(w.get("word", "")),
            start=float(w.get("start", 0.0)),
            end=float(w.get("end", 0.0)),
        )
        for w in stored.get("words", [])
    )
    return TranscriptLine(
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
