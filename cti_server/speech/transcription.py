"""Every answered call transcribed, customer and agent apart, live when there is room.

On ``CallAnswered`` the call is recorded (MixMonitor: one file per direction, the fallback) and,
while the decode pool has live capacity, each side is tapped without touching the call: an
Originate of ``Local/s@cti-tap-src`` runs ``ChanSpy(<side>,qEo)`` (hear only that side, end when
it hangs up, say nothing) and its other half streams to our AudioSocket listener. When the
customer is handed over (``CallTransferred``), the new party is tapped the same way: the live
transcript goes on with whoever the customer talks to, and is what the next one reads. On
``CallEnded`` the live segments are published; a call that had no room, whose tap failed or
whose decoding fell behind is decoded from its recordings instead. Either way one
``CallTranscribed`` event carries the whole transcript to the recorder, which journals it like
every other write: nothing is dropped silently, and the counters say how each call went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cti_server.bus import Bus
from cti_server.config import SpeechSettings, TranscriptionSettings
from cti_server.events import (
    CallAnswered,
    CallEnded,
    CallTranscribed,
    CallTransferred,
    DomainEvent,
    IvrFinished,
    TranscriptPartial,
)
from cti_server.speech.audiosocket import AudioSocketServer
from cti_server.speech.decoder import (
    CALL_RATE,
    RecognisedUtterance,
    StreamDecoder,
    model_rate,
    read_call_audio,
)
from cti_server.speech.models import SpeechModels
from cti_server.speech.pool import DecodePool
from cti_server.speech.recognizers import Recognizer, WarmRecognizers, warmed
from cti_server.speech.redaction import LiveRedactor, redact_segments
from cti_server.speech.tap import TapStream
from cti_server.telephony.ami_client import AmiClient, AmiError

log = logging.getLogger(__name__)

TAP_CONNECT_TIMEOUT = 5.0
TAP_DRAIN_TIMEOUT = 30.0
RECORDING_TIMEOUT = 30.0
POST_CALL_CHUNK = 2 * CALL_RATE * 5  # post-call audio decoded 5 s at a time: live work interleaves


@dataclass
class _CallTranscription:
    """One answered call being transcribed: its language, its live taps, what is shown."""

    linkedid: str
    language: str
    answered: float  # monotonic
    live: bool = False
    taps: list[TapStream] = field(default_factory=list)
    redactor: LiveRedactor | None = None  # what is shown while the call runs


def recording_names(linkedid: str) -> tuple[str, str, str]:
    """The dialplan's recording (``cti-record``), in Asterisk's monitor directory: the mix,
    the customer's side, the agent's side."""
    name = f"cti-{linkedid}"
    return f"{name}.wav", f"{name}-customer.wav", f"{name}-agent.wav"


class TranscriptionService:
    def __init__(  # noqa: PLR0917 - the composition root names them all
        self,
        settings: TranscriptionSettings,
        speech: SpeechSettings,
        bus: Bus,
        ami: AmiClient,
        listener: AudioSocketServer,
        models: SpeechModels,
        regions: Sequence[str] | None = None,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._settings = settings
        self._speech = speech
        self._bus = bus
        self._ami = ami
        self._listener = listener
        self._models = models
        self._regions = regions  # where phone numbers come from; None: no redaction
        self._is_leader = is_leader  # processes sharing a node: only the leader taps its calls
        self.pool = DecodePool(settings.workers, settings.max_live_calls, settings.max_lag_seconds)
        self._languages: dict[str, str] = {}
        self._calls: dict[str, _CallTranscription] = {}
        self._followed: set[str] = set()  # answered calls whose transcript is still to come
        self._tasks: set[asyncio.Task[None]] = set()
        # a live call has two sides (and a hand-over's third); post-call decoding its slots
        self.recognizers = WarmRecognizers(3 * self.pool.capacity + self.pool.post_call_slots)
        self._warming: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._settings.enabled and bool(self._models.languages())

    def attach(self) -> None:
        if self.active:
            self._bus.listen(
                (IvrFinished, CallAnswered, CallTransferred, CallEnded), self._on_event
            )
            if self._settings.live:
                self._warming = asyncio.get_running_loop().create_task(self._warm())

    async def _warm(self) -> None:
        """Recognizers for both sides of as many live calls as the pool admits, warmed one at a
        time (one worker busy, the others free for calls) while the server starts."""
        for language in sorted(self._models.languages()):
            try:
                model = await self._models.get(language)
                rate = model_rate(self._speech.models[language])
                for _ in range(2 * self.pool.capacity):
                    recognizer = await self.pool.run(warmed, model, rate)
                    self.recognizers.give_back(language, recognizer)
            except Exception:  # the calls will say it again, where it matters
                log.exception("speech recognizers for %r could not be warmed", language)
                continue
            log.info(
                "speech recognizers for %r warmed (%d)", language, self.recognizers.idle(language)
            )

    async def settled(self) -> None:
        """Until the work under way (following answered calls, transcribing ended ones) is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.pool.close()

    def status(self) -> dict[str, Any]:
        counters = self.pool.counters
        return {
            "ok": True,
            "active": self.active,
            "live_now": self.pool.live_now,
            "live_capacity": self.pool.capacity,
            "live_lag_seconds": round(self.pool.lag_seconds, 2),
            "post_call_backlog": self.pool.post_call_backlog,
            "recognizers_reused": self.recognizers.reused,
            **counters.__dict__,
        }

    def _on_event(self, event: DomainEvent) -> None:
        if isinstance(event, IvrFinished):
            language = event.attributes.get("language", "")
            if language:
                self._languages[event.linkedid] = language
        elif isinstance(event, CallAnswered):
            self._spawn(self._answered(event))
        elif isinstance(event, CallTransferred) and event.linkedid in self._calls:
            self._spawn(self._handed_over(self._calls[event.linkedid], event))
        elif isinstance(event, CallEnded) and event.linkedid in self._calls:
            self._spawn(self._ended(self._calls.pop(event.linkedid), event))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def follows(self, linkedid: str) -> bool:
        """Whether a transcript (or a failure to make one) is still to come for this call."""
        return linkedid in self._followed

    def _language(self, linkedid: str) -> str | None:
        """The IVR's language for the call, if a model speaks it (a Korean model would only
        turn English speech into nonsense for the complaint detector); else the default."""
        languages = self._models.languages()
        chosen = self._languages.pop(linkedid, None)
        if chosen:
            return chosen if chosen in languages else None
        wanted = self._settings.language
        if wanted in languages:
            return wanted
        return sorted(languages)[0] if languages else None

    async def _answered(self, event: CallAnswered) -> None:
        language = self._language(event.linkedid)
        if not self._is_leader() or language is None or not event.caller_channel:
            return
        if event.linkedid in self._calls:  # answered again (a transfer): already followed
            return
        call = _CallTranscription(event.linkedid, language, time.monotonic())
        if self._regions is not None:
            call.redactor = LiveRedactor(self._regions)
        self._calls[event.linkedid] = call
        self._followed.add(event.linkedid)
        if self._settings.live and event.agent_channel and self.pool.admit_live():
            call.live = True
            await self._tap(call, event)

    async def _tap(self, call: _CallTranscription, event: CallAnswered) -> None:
        for speaker, channel in (
            ("customer", event.caller_channel),
            ("agent", event.agent_channel),
        ):
            if not await self._tap_side(call, event.node, speaker, channel):
                return

    async def _handed_over(self, call: _CallTranscription, event: CallTransferred) -> None:
        """The customer's new party (a transfer's target, a picker) speaks as the agent."""
        if call.live and event.party_channel and self._is_leader():
            await self._tap_side(call, event.node, "agent", event.party_channel)

    async def _tap_side(
        self, call: _CallTranscription, node: str, speaker: str, channel: str
    ) -> bool:
        """One side's tap; False (live given up for the call) if it could not be set up."""
        offset = time.monotonic() - call.answered
        decoder = await self._decoder(call.language, speaker, offset)
        stream = TapStream(
            decoder,
            self.pool,
            self._settings.max_lag_seconds,
            self._partial(node, call, speaker),
        )
        if not self._listener.expect_stream(stream):
            self._give_up_live(call, "the AudioSocket listener is not running")
            return False
        call.taps.append(stream)
        try:
            await self._originate_tap(channel, stream)
        except (AmiError, TimeoutError) as exc:
            self._give_up_live(call, f"tap refused: {exc}")
            return False
        return True

    async def _decoder(self, language: str, speaker: str, offset: float) -> StreamDecoder:
        """A decoder on a warm recognizer when one is idle, else on one made off the loop."""
        model = await self._models.get(language)
        rate = model_rate(self._speech.models[language])
        recognizer = self.recognizers.take(language)
        if recognizer is None:
            recognizer = await self.pool.run(Recognizer, model, rate)
        return StreamDecoder(model, rate, speaker, offset, recognizer)

    def _recycle(self, language: str, decoders: Sequence[StreamDecoder]) -> None:
        """The recognizers of finished streams, for the next; any other is dropped."""
        for decoder in decoders:
            if decoder.finished:
                self.recognizers.give_back(language, decoder.recognizer)

    async def _originate_tap(self, channel: str, stream: TapStream) -> None:
        reply = await self._ami.send_action(
            "Originate",
            {
                "Channel": "Local/s@cti-tap-src",
                "Context": "cti-tap",
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Variable": [
                    f"SPYON={channel}",
                    f"TAPID={stream.id}",
                    f"TAPTO={self._listener.address}",
                ],
            },
            timeout=10.0,
        )
        first = reply[0] if isinstance(reply, list) else reply
        if not first.success:
            raise AmiError(str(first.get("Message", "Originate refused")))

    def _give_up_live(self, call: _CallTranscription, why: str) -> None:
        log.warning(
            "call %s: no live transcription (%s), after the call instead", call.linkedid, why
        )
        for stream in call.taps:
            self._listener.forget_stream(stream)
        call.taps.clear()
        if call.live:
            call.live = False
            self.pool.release_live()

    def _partial(
        self, node: str, call: _CallTranscription, speaker: str
    ) -> Callable[[RecognisedUtterance | None, str], None]:
        def publish(segment: RecognisedUtterance | None, text: str) -> None:
            if call.redactor is not None:
                text = (
                    call.redactor.final(segment).text
                    if segment is not None
                    else call.redactor.partial(speaker, text)
                )
            self._bus.publish(
                TranscriptPartial(
                    node=node,
                    linkedid=call.linkedid,
                    speaker=speaker,
                    text=text[:500],
                    final=segment is not None,
                    start=segment.start if segment else 0.0,
                    end=segment.end if segment else 0.0,
                )
            )

        return publish

    async def _ended(self, call: _CallTranscription, event: CallEnded) -> None:
        """The transcript, or word that there will be none (``mode="failed"``), so that the
        complaint watch judges the call on its facts now rather than after waiting for it."""
        try:
            transcript = await self._transcribe(call, event)
        finally:
            self._followed.discard(call.linkedid)
        self._bus.publish(
            transcript
            or CallTranscribed(
                node=event.node,
                linkedid=call.linkedid,
                language=call.language,
                mode="failed",
                segments=[],
            )
        )

    async def _transcribe(
        self, call: _CallTranscription, event: CallEnded
    ) -> CallTranscribed | None:
        segments: list[RecognisedUtterance] | None = None
        mode = "live"
        try:
            if call.live:
                segments = await self._live_segments(call)
            if segments is None:
                mode = "post_call"
                self.pool.counters.post_call_calls += 1
                segments = await self._post_call_segments(call, _queue_time(event))
        except Exception:
            self.pool.counters.failed_calls += 1
            log.exception("call %s could not be transcribed", call.linkedid)
            return None
        finally:
            if call.live:
                self.pool.release_live()
        if segments is None:
            self.pool.counters.failed_calls += 1
            return None
        segments.sort(key=lambda s: (s.start, s.speaker))
        if self._regions is not None:  # the whole call at once: context crosses segments
            segments = redact_segments(segments, self._regions)
        self.pool.counters.transcribed_calls += 1
        self.pool.counters.segments += len(segments)
        return CallTranscribed(
            node=event.node,
            linkedid=call.linkedid,
            language=call.language,
            mode=mode,
            segments=[s.as_dict() for s in segments],
        )

    async def _live_segments(self, call: _CallTranscription) -> list[RecognisedUtterance] | None:
        """Both taps' segments once they have drained; None: decode the recordings instead."""
        try:
            for stream in call.taps:
                async with asyncio.timeout(TAP_CONNECT_TIMEOUT):
                    await stream.connected.wait()
            async with asyncio.timeout(TAP_DRAIN_TIMEOUT):
                for stream in call.taps:
                    await stream.finished.wait()
        except TimeoutError:
            for stream in call.taps:
                self._listener.forget_stream(stream)
            log.warning("call %s: a live tap never connected or ended", call.linkedid)
            return None
        self._recycle(call.language, [stream.decoder for stream in call.taps])
        if any(stream.degraded for stream in call.taps):
            self.pool.counters.degraded_calls += 1
            return None
        return [segment for stream in call.taps for segment in stream.segments]

    async def _post_call_segments(
        self, call: _CallTranscription, held: float
    ) -> list[RecognisedUtterance] | None:
        """From the recordings, which start when the caller joined the queue: ``held`` seconds
        before the answer, moved so that times count from the answer like live ones."""
        folder = self._settings.recordings_path
        if folder is None or "/" in call.linkedid:
            log.warning("call %s: no recording to transcribe", call.linkedid)
            return None
        _, customer, agent = recording_names(call.linkedid)
        segments: list[RecognisedUtterance] = []
        async with self.pool.post_call():  # after the live taps: a few at once, in chunks
            for speaker, name in (("customer", customer), ("agent", agent)):
                path = folder / name
                if not await _settled(path):
                    log.warning("call %s: recording %s never appeared", call.linkedid, path)
                    return None
                pcm = await asyncio.to_thread(read_call_audio, path)
                decoder = await self._decoder(call.language, speaker, -held)
                decoded: list[RecognisedUtterance] = []
                for at in range(0, len(pcm), POST_CALL_CHUNK):
                    decoded += await self.pool.run(decoder.feed, pcm[at : at + POST_CALL_CHUNK])
                decoded += await self.pool.run(decoder.finish)
                self._recycle(call.language, [decoder])
                segments += [s for s in decoded if s.start >= 0]  # not the music on hold
        return segments


def _queue_time(event: CallEnded) -> float:
    if event.queued_at is None or event.answered_at is None:
        return 0.0
    return max(0.0, (event.answered_at - event.queued_at).total_seconds())


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else -1


async def _settled(path: Path) -> bool:
    """The recording exists and has stopped growing (MixMonitor closes it after the call)."""
    deadline = time.monotonic() + RECORDING_TIMEOUT
    size = -1
    while time.monotonic() < deadline:
        current = await asyncio.to_thread(_size, path)
        if current > 44 and current == size:
            return True
        size = current
        await asyncio.sleep(0.5)  # a file on disk has no event to wait on
    return False
