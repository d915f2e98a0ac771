"""One side of a live call, as a ChanSpy tap streams it to our AudioSocket listener.

Audio is decoded in order, one chunk at a time in the decode pool; what arrives meanwhile
waits in a buffer. Each frame is also heard for the speaker's pauses (:mod:`.pauses`): when one
completes, what is buffered goes to the decoder at once, to close the utterance (without it a
line came about half a second later: the recognizer reads ahead of what it has decoded). A
buffer longer than ``max_lag`` seconds means decoding fell behind: the
stream stops decoding (the call is then transcribed from its recording after it ends), and it
keeps reading so Asterisk is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from cti_server.speech.audiosocket import KIND_AUDIO, KIND_ERROR, KIND_HANGUP, read_frame
from cti_server.speech.decoder import CALL_RATE, RecognisedUtterance, StreamDecoder
from cti_server.speech.pauses import PauseDetector
from cti_server.speech.pool import DecodePool

log = logging.getLogger(__name__)

CHUNK_BYTES = CALL_RATE * 2 // 5  # a fifth of a second of 16-bit audio per decoding step: an
# utterance's end is seen that much sooner (half a second added 0.3 s to a supervisor's wait,
# bench/transcript_latency.py), for a few more hand-overs to the pool
READ_AHEAD = 0.6  # seconds: about what a Vosk model decodes behind the audio it was given


def most_filler(end_silence: float) -> float:
    """The filler a pause may take to close an utterance: the model's read-ahead and its
    unsure rule's trailing silence (twice ``end_silence``, :func:`.models.with_end_silence`)."""
    return READ_AHEAD + 2 * end_silence


class TapStream:
    def __init__(
        self,
        decoder: StreamDecoder,
        pool: DecodePool,
        max_lag: float,
        on_partial: Callable[[RecognisedUtterance | None, str], None] | None = None,
        pauses: PauseDetector | None = None,
    ) -> None:
        """``pauses``: hears the speaker's pauses (None: the recognizer's endpoint alone)."""
        self.id = uuid.uuid4()
        self.connected = asyncio.Event()
        self.finished = asyncio.Event()
        self.segments: list[RecognisedUtterance] = []
        self.degraded = False
        self._decoder = decoder
        self._pool = pool
        self._max_lag_bytes = int(max_lag * 2 * CALL_RATE)
        self._on_partial = on_partial
        self._pauses = pauses
        self._waiting = 0  # bytes of audio received, not yet decoding
        self.closed_on_pause = 0  # utterances closed as a pause was heard (else: the endpoint)
        self.linkedid = ""  # the call's, for the log of each line's steps

    @property
    def lag_seconds(self) -> float:
        """How far decoding is behind the call: the audio waiting for its turn."""
        return self._waiting / (2 * CALL_RATE)

    @property
    def decoder(self) -> StreamDecoder:
        return self._decoder

    @property
    def speaker(self) -> str:
        return self._decoder.speaker

    async def consume(self, reader: asyncio.StreamReader) -> None:
        buffer = bytearray()
        decoding: asyncio.Task[list[RecognisedUtterance]] | None = None
        step = _Step()  # the chunk being decoded: when it was handed over, on a pause or not
        paused: float | None = None  # perf_counter when a pause was heard, not yet handed over
        self._pool.watch(self)
        try:
            while True:
                try:
                    kind, payload = await read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if kind in (KIND_HANGUP, KIND_ERROR):
                    break
                if kind != KIND_AUDIO or self.degraded:
                    continue
                buffer += payload
                if self._pauses is not None and self._pauses.hear(payload):
                    paused = time.perf_counter()
                if decoding is not None and decoding.done():
                    self._take(decoding.result(), step)
                    decoding = None
                if len(buffer) > self._max_lag_bytes:
                    self._fall_behind()
                    buffer.clear()
                elif decoding is None and (paused is not None or len(buffer) >= CHUNK_BYTES):
                    chunk, buffer = bytes(buffer), bytearray()
                    step = _Step(time.perf_counter(), paused)
                    decoding = asyncio.create_task(self._decode(chunk, paused is not None))
                    paused = None
                self._waiting = len(buffer)
            self._waiting = 0
            if decoding is not None:
                self._take(await decoding, step)
            await self._finish(bytes(buffer))
        finally:
            self._waiting = 0
            self._pool.unwatch(self)
            if decoding is not None and not decoding.done():
                decoding.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await decoding
            self.finished.set()

    async def _finish(self, rest: bytes) -> None:
        """The stream ended: what was left, and what was still being said."""
        if self.degraded:
            return
        if rest:
            self._take(await self._pool.run(self._decoder.feed, rest))
        self._take(await self._pool.run(self._decoder.finish))

    async def _decode(self, chunk: bytes, paused: bool) -> list[RecognisedUtterance]:
        if not paused or self._pauses is None:
            return await self._pool.run(self._decoder.feed, chunk)
        pauses = self._pauses
        return await self._pool.run(
            self._decoder.close,
            chunk,
            pauses.noise_rms,
            most_filler(pauses.end_silence),
            pauses.threshold,
        )

    def _take(self, segments: list[RecognisedUtterance], step: _Step | None = None) -> None:
        """Closed utterances are kept and told (``on_partial(segment, text)``); between them,
        what is being said (``on_partial(None, text)``)."""
        self.segments += segments
        if segments and step is not None and step.handed:
            self._log_steps(segments[-1], step)
        if self._on_partial is None:
            return
        for segment in segments:
            self._on_partial(segment, segment.text)
        if not segments and self._decoder.partial:
            self._on_partial(None, self._decoder.partial)

    def _log_steps(self, segment: RecognisedUtterance, step: _Step) -> None:
        """Where a line's time went, step by step (bench/transcript_latency.py reads it): from
        its last word to the pause heard (the pause itself, structural), to its chunk handed to
        the pool (waiting for the stream's previous chunk), to decoded (CPU and the pool's queue),
        and how it closed: on a pause with the filler it took, or at the recognizer's endpoint."""
        now = time.perf_counter()
        fed = self._decoder.start + self._decoder.seconds  # the call's audio decoded, in the call
        on_pause = step.paused is not None and self._decoder.filler > 0
        self.closed_on_pause += on_pause
        log.debug(
            "%s: utterance closed %s, %.2f s of call audio after its last word; the chunk"
            " waited %.3f s for the pool and decoded in %.3f s (%.1f s of filler);"
            " %.2f s of audio waiting",
            self.speaker,
            "on a pause" if on_pause else "at the recognizer's endpoint",
            fed - segment.end,
            step.handed - (step.paused or step.handed),
            now - step.handed,
            self._decoder.filler if step.paused is not None else 0.0,
            self.lag_seconds,
            extra={
                "line_linkedid": self.linkedid,
                "line_speaker": self.speaker,
                "line_on_pause": on_pause,
                "line_audio_after_words": round(fed - segment.end, 3),
                "line_pause_to_handed": round(step.handed - (step.paused or step.handed), 4),
                "line_decoding": round(now - step.handed, 4),
                "line_filler": self._decoder.filler if step.paused is not None else 0.0,
                "line_closed_at": time.time(),  # the bench's clock is another process's
            },
        )

    def _fall_behind(self) -> None:
        self.degraded = True
        self.segments.clear()  # the recording is decoded whole after the call instead
        log.warning("live transcription of the %s fell behind: after the call", self.speaker)


class _Step:
    """A chunk handed to the pool: when (perf_counter), and when the pause that sent it early
    was heard (None: a full chunk)."""

    __slots__ = ("handed", "paused")

    def __init__(self, handed: float = 0.0, paused: float | None = None) -> None:
        self.handed = handed
        self.paused = paused
