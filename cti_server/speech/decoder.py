"""One direction of a call (the customer, or the agent) decoded into timed utterances.

Call audio is 8 kHz; a Vosk model has its own rate (16 kHz for most), so the audio is resampled
with soxr first, in a stream so that chunk edges leave no clicks. Each utterance Vosk closes
becomes a :class:`RecognisedUtterance` with its words and their times, from the start of the
stream plus ``offset``.
The methods block (Kaldi decoding): call them from a worker thread, never the event loop.
"""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from cti_server.speech.pauses import level_dbfs
from cti_server.speech.recognizers import Recognizer

CALL_RATE = 8000
_RATE = re.compile(r"--sample-frequency=(\d+)")
FILLER_STEP = 0.1  # seconds of filler per recognizer call while closing an utterance
MIN_FILLER_RMS = 8.0  # a filler is never digital silence, which this kind of model mistakes
_FILLER_SEED = 23
REPAY_FRAME = 320  # 20 ms: the quiet that repays a filler is judged frame by frame
REPAY_GUARD = 0.1  # of quiet kept before any louder audio: the onset of the next words


@dataclass(frozen=True)
class RecognisedUtterance:
    """One utterance the recogniser closed: who spoke, when (seconds from the start of the
    call), the text, the mean confidence and each word with its times and confidence."""

    speaker: str
    start: float
    end: float
    text: str
    confidence: float
    words: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "confidence": self.confidence,
            "words": self.words,
        }


def model_rate(model_dir: Path) -> int:
    """The rate the model's features expect (``conf/mfcc.conf``; Kaldi's default 16 kHz)."""
    conf = model_dir / "conf" / "mfcc.conf"
    found = _RATE.search(conf.read_text(encoding="utf-8")) if conf.is_file() else None
    return int(found.group(1)) if found else 16000


class StreamDecoder:
    """One stream's utterances, from a new recognizer or a warm one (:mod:`.recognizers`)."""

    def __init__(
        self,
        model: Any,
        rate: int,
        speaker: str,
        offset: float = 0.0,
        recognizer: Recognizer | None = None,
    ) -> None:
        self.speaker = speaker
        self.recognizer = recognizer or Recognizer(model, rate)
        self.start = offset  # seconds into the call where this stream's audio begins
        # Vosk times words from the first sample the recognizer ever heard
        self._offset = offset - self.recognizer.seconds
        self._resampler = (
            soxr.ResampleStream(CALL_RATE, rate, 1, dtype="int16") if rate != CALL_RATE else None
        )
        self.seconds = 0.0  # of call audio fed so far
        self.partial = ""
        self.finished = False  # finish() done: the recognizer may serve another stream
        self.filler = 0.0  # seconds of filler the last close() fed (none of it the call's)
        self.repaid = 0.0  # seconds of the call's quiet not decoded, for fillers, all told
        self._owed = 0.0  # filler seconds the call's quiet may still repay
        self._quiet_dbfs = 0.0  # audio below this level is quiet (the pause's, at the close)
        self._held = b""  # quiet audio that may repay a filler, until what follows it is heard
        self._noise = np.random.default_rng(_FILLER_SEED)

    def feed(self, pcm: bytes) -> list[RecognisedUtterance]:
        """8 kHz signed 16-bit mono audio; the segments it closed."""
        self.seconds += len(pcm) / (2 * CALL_RATE)
        if self._owed > 0 or self._held:
            pcm = self._repay(pcm)
        if self._accept(pcm):
            return self._segment(self.recognizer.result())
        self.partial = self.recognizer.partial()
        return []

    def close(
        self, pcm: bytes, noise_rms: float, most: float, quiet_dbfs: float = -200.0
    ) -> list[RecognisedUtterance]:
        """``pcm`` (as :meth:`feed`), after which the speaker paused (:mod:`.pauses`): the
        recognizer, whose network reads ahead of what it has decoded, hears up to ``most``
        seconds of filler (noise at the line's floor) at once instead of waiting for the
        call's next half second, until its own endpoint closes the utterance. If it does not
        (it heard no words, or not a pause), nothing is forced and the call goes on. Word
        times are the call's: the filler is taken out of them. The filler is repaid: as much of
        the quiet that follows (below ``quiet_dbfs``) is not decoded, so that a pause costs
        the recognizer no more work than before (:meth:`_repay`)."""
        self.filler = 0.0
        segments = self.feed(pcm)
        if segments or not self.partial:
            return segments
        end = self.recognizer.seconds  # the call's audio ends here, in the recognizer's clock
        closed = False
        while not closed and self.filler < most - 1e-9:
            noise = self._noise.normal(0.0, max(noise_rms, MIN_FILLER_RMS), _samples(FILLER_STEP))
            closed = self._accept(np.clip(noise, -32768, 32767).astype(np.int16).tobytes())
            self.filler += FILLER_STEP
        if closed:
            segments = self._segment(self.recognizer.result(), until=end)
            self.partial = ""
            self._owed, self._quiet_dbfs = self.filler, quiet_dbfs
        else:
            self.partial = self.recognizer.partial()
        self._offset -= self.recognizer.seconds - end  # what follows: the call's time again
        return segments

    def _repay(self, pcm: bytes) -> bytes:
        """``pcm`` less the quiet frames that repay a filler. A quiet frame is left out only
        with :data:`REPAY_GUARD` of quiet after it, so that the start of the next words is
        heard whole: the quiet at the end of ``pcm`` waits for the next call to know what
        follows it. The first louder frame ends the repaying (speech again)."""
        pcm, self._held = self._held + pcm, b""
        frames = [pcm[at : at + REPAY_FRAME] for at in range(0, len(pcm), REPAY_FRAME)]
        quiet = [
            level_dbfs(np.frombuffer(frame[: len(frame) // 2 * 2], dtype=np.int16))
            <= self._quiet_dbfs
            for frame in frames
        ]
        guard = round(REPAY_GUARD * CALL_RATE * 2 / REPAY_FRAME)
        kept: list[bytes] = []
        for n, frame in enumerate(frames):
            seconds = len(frame) / (2 * CALL_RATE)
            if not quiet[n]:
                self._owed = 0.0
            if self._owed < seconds - 1e-9:
                kept += frames[n:]
                break
            if n + guard >= len(frames):  # what follows it is not known yet
                self._held = b"".join(frames[n:])
                break
            if all(quiet[n : n + guard + 1]):
                self._owed -= seconds
                self.repaid += seconds
                self._offset += seconds  # the call's clock goes on; the recognizer's does not
            else:
                kept.append(frame)
        return b"".join(kept)

    def _accept(self, pcm: bytes) -> bool:
        if self._resampler is not None:
            samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
            pcm = self._resampler.resample_chunk(samples).tobytes()
        return self.recognizer.accept(pcm)

    def finish(self) -> list[RecognisedUtterance]:
        """What was still being said when the audio ended."""
        if self._held:  # quiet held back to repay a filler: the call's all the same
            self._accept(self._held)
            self._held = b""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            if len(tail):
                self.recognizer.accept(tail.tobytes())
        segments = self._segment(self.recognizer.final())
        self.finished = True
        return segments

    def _segment(
        self, result: dict[str, Any], until: float | None = None
    ) -> list[RecognisedUtterance]:
        """The utterance Vosk closed, timed in the call; ``until``: where the call's audio ended
        in the recognizer's clock (a filler followed it), which no word goes past."""
        words = [w for w in result.get("result", []) if w.get("word") and w["word"] != "[unk]"]
        if not words:
            return []
        last = float("inf") if until is None else until
        timed: list[dict[str, Any]] = [
            {
                "word": str(w["word"]),
                "start": round(min(float(w["start"]), last) + self._offset, 2),
                "end": round(min(float(w["end"]), last) + self._offset, 2),
                "confidence": round(float(w.get("conf", 1.0)), 3),
            }
            for w in words
        ]
        return [
            RecognisedUtterance(
                speaker=self.speaker,
                start=timed[0]["start"],
                end=timed[-1]["end"],
                text=" ".join(w["word"] for w in timed),
                confidence=round(sum(float(w["confidence"]) for w in timed) / len(timed), 3),
                words=timed,
            )
        ]


def _samples(seconds: float) -> int:
    return round(CALL_RATE * seconds)


def decode_file(
    model: Any, rate: int, path: Path, speaker: str, offset: float = 0.0
) -> list[RecognisedUtterance]:
    """A whole recording (8 kHz wav, as MixMonitor writes it), e.g. after the call."""

    decoder = StreamDecoder(model, rate, speaker, offset)
    segments: list[RecognisedUtterance] = []
    pcm = read_call_audio(path)
    for at in range(0, len(pcm), 8000):
        segments += decoder.feed(pcm[at : at + 8000])
    return segments + decoder.finish()


def read_call_audio(path: Path) -> bytes:
    """A recording's audio (8 kHz 16-bit wav, as MixMonitor writes it)."""
    with wave.open(str(path), "rb") as audio:
        if audio.getframerate() != CALL_RATE or audio.getsampwidth() != 2:
            raise ValueError(f"{path.name}: expected 8 kHz 16-bit audio")
        return audio.readframes(audio.getnframes())
