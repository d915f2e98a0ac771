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

from cti_server.speech.recognizers import Recognizer

CALL_RATE = 8000
_RATE = re.compile(r"--sample-frequency=(\d+)")


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

    def feed(self, pcm: bytes) -> list[RecognisedUtterance]:
        """8 kHz signed 16-bit mono audio; the segments it closed."""
        self.seconds += len(pcm) / (2 * CALL_RATE)
        if self._resampler is not None:
            samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
            pcm = self._resampler.resample_chunk(samples).tobytes()
        if self.recognizer.accept(pcm):
            return self._segment(self.recognizer.result())
        self.partial = self.recognizer.partial()
        return []

    def finish(self) -> list[RecognisedUtterance]:
        """What was still being said when the audio ended."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            if len(tail):
                self.recognizer.accept(tail.tobytes())
        segments = self._segment(self.recognizer.final())
        self.finished = True
        return segments

    def _segment(self, result: dict[str, Any]) -> list[RecognisedUtterance]:
        words = [w for w in result.get("result", []) if w.get("word") and w["word"] != "[unk]"]
        if not words:
            return []
        timed: list[dict[str, Any]] = [
            {
                "word": str(w["word"]),
                "start": round(float(w["start"]) + self._offset, 2),
                "end": round(float(w["end"]) + self._offset, 2),
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
