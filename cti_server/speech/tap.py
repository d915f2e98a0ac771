"""One side of a live call, as a ChanSpy tap streams it to our AudioSocket listener.

Audio is decoded in order, one chunk at a time in the decode pool; what arrives meanwhile
waits in a buffer. A buffer longer than ``max_lag`` seconds means decoding fell behind: the
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
from cti_server.speech.pool import DecodePool

log = logging.getLogger(__name__)

CHUNK_BYTES = CALL_RATE * 2 // 5  # a fifth of a second of 16-bit audio per decoding step: an
# utterance's end is seen that much sooner (half a second added 0.3 s to a supervisor's wait,
# bench/transcript_latency.py), for a few more hand-overs to the pool


class TapStream:
    def __init__(
        self,
        decoder: StreamDecoder,
        pool: DecodePool,
        max_lag: float,
        on_partial: Callable[[RecognisedUtterance | None, str], None] | None = None,
    ) -> None:
        self.id = uuid.uuid4()
        self.connected = asyncio.Event()
        self.finished = asyncio.Event()
        self.segments: list[RecognisedUtterance] = []
        self.degraded = False
        self._decoder = decoder
        self._pool = pool
        self._max_lag_bytes = int(max_lag * 2 * CALL_RATE)
        self._on_partial = on_partial
        self._waiting = 0  # bytes of audio received, not yet decoding

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
        handed = 0.0  # when the chunk being decoded was handed to the pool
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
                if decoding is not None and decoding.done():
                    self._take(decoding.result(), handed)
                    decoding = None
                if len(buffer) > self._max_lag_bytes:
                    self._fall_behind()
                    buffer.clear()
                elif decoding is None and len(buffer) >= CHUNK_BYTES:
                    chunk, buffer = bytes(buffer), bytearray()
                    decoding = asyncio.create_task(self._pool.run(self._decoder.feed, chunk))
                    handed = time.perf_counter()
                self._waiting = len(buffer)
            self._waiting = 0
            if decoding is not None:
                self._take(await decoding)
            if not self.degraded:
                if buffer:
                    self._take(await self._pool.run(self._decoder.feed, bytes(buffer)))
                self._take(await self._pool.run(self._decoder.finish))
        finally:
            self._waiting = 0
            self._pool.unwatch(self)
            if decoding is not None and not decoding.done():
                decoding.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await decoding
            self.finished.set()

    def _take(self, segments: list[RecognisedUtterance], handed: float | None = None) -> None:
        """Closed utterances are kept and told (``on_partial(segment, text)``); between them,
        what is being said (``on_partial(None, text)``)."""
        self.segments += segments
        if segments and handed is not None:  # where a line's time goes (bench/transcript_latency)
            log.debug(
                "%s: utterance closed %.2f s after its last word, its chunk decoded in %.3f s,"
                " %.2f s of audio waiting",
                self.speaker,
                self._decoder.seconds + self._decoder.start - segments[-1].end,
                time.perf_counter() - handed,
                self.lag_seconds,
            )
        if self._on_partial is None:
            return
        for segment in segments:
            self._on_partial(segment, segment.text)
        if not segments and self._decoder.partial:
            self._on_partial(None, self._decoder.partial)

    def _fall_behind(self) -> None:
        self.degraded = True
        self.segments.clear()  # the recording is decoded whole after the call instead
        log.warning("live transcription of the %s fell behind: after the call", self.speaker)
