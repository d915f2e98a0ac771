"""Recognizers kept warm between streams, so that a call's first words decode as fast as the rest.

A Vosk model built with a lookahead graph (``HCLr.fst`` + ``Gr.fst``, as the packaged Korean one
and most of Vosk's small models are) composes its decoding graph as the search reaches it and
caches what it composed; the cache belongs to the recognizer, not to the model. A new recognizer
therefore decodes its first utterance at about twice the CPU of the next ones (a 5 s prompt: 2.4-
3.0 s of CPU against 1.1-1.5 s once the cache is warm), and on a busy machine the first line of a
call, which is the one a live complaint alert is usually about, reached the wallboard later than
the others. Creating one also takes 0.1-0.5 s, which blocked the event loop.

So a recognizer is not thrown away when its stream ends: finalized (its features, i-vector and
decoder start afresh for the next speaker; only the graph cache stays) it waits here for the
next stream of the same language, and new ones are warmed with a few seconds of noise, in the
background at start, before any call needs them. Vosk times words from the first sample a
recognizer ever heard, so each :class:`Recognizer` counts what it was fed and a stream's times
are taken from where it began; a recognizer retires after :data:`RETIRE_SECONDS` of audio, while
those times (single precision in Vosk) are still exact to the millisecond.

The methods that decode block (Kaldi): call them from a worker thread, never the event loop.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
import soxr

WARM_SECONDS = 10.0  # of noise: most of the cache a first utterance would have built
RETIRE_SECONDS = 4 * 3600.0
_FINALIZE_SECONDS = 0.01  # of silence fed before ending a stream, so that it always finalizes
_NOISE_SEED = 17
_PHONE_RATE = 8000  # the band calls are heard in


class Recognizer:
    """A Vosk recognizer with words and their times, and the count of audio it was fed."""

    def __init__(self, model: Any, rate: int) -> None:
        from vosk import KaldiRecognizer  # noqa: PLC0415 - native library, loaded on use

        self.rate = rate
        self._kaldi = KaldiRecognizer(model, rate)
        self._kaldi.SetWords(True)
        self._samples = 0

    @property
    def seconds(self) -> float:
        """Audio fed since it was made: where Vosk's clock stands for the next stream."""
        return self._samples / self.rate

    def accept(self, pcm: bytes) -> bool:
        """16-bit audio at the model's rate; True when an utterance ended (see :meth:`result`)."""
        self._samples += len(pcm) // 2
        return bool(self._kaldi.AcceptWaveform(pcm))

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self._kaldi.Result()))

    def partial(self) -> str:
        return str(json.loads(self._kaldi.PartialResult()).get("partial", ""))

    def final(self) -> dict[str, Any]:
        """What was still being said; the recognizer is left finalized, so the stream that
        uses it next starts with new features (a short silence makes sure of it: Vosk skips
        finalizing right after an utterance closed)."""
        self.accept(bytes(2 * round(self.rate * _FINALIZE_SECONDS)))
        return dict(json.loads(self._kaldi.FinalResult()))

    def warm(self, seconds: float = WARM_SECONDS) -> None:
        """Decode ``seconds`` of telephone-band noise and forget it: the graph cache fills."""
        rng = np.random.default_rng(_NOISE_SEED)
        noise = rng.normal(0.0, 2000.0, round(_PHONE_RATE * seconds)).astype(np.int16)
        audio = soxr.resample(noise, _PHONE_RATE, self.rate).astype(np.int16)
        step = self.rate // 5
        for at in range(0, len(audio), step):
            self.accept(audio[at : at + step].tobytes())
        self.final()


def warmed(model: Any, rate: int) -> Recognizer:
    """A new recognizer, warmed (blocks for a second or two of CPU)."""
    recognizer = Recognizer(model, rate)
    recognizer.warm()
    return recognizer


class WarmRecognizers:
    """Idle recognizers by language, the most recently used first; at most ``keep`` each."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._idle: dict[str, list[Recognizer]] = defaultdict(list)
        self.reused = 0

    def take(self, language: str) -> Recognizer | None:
        """An idle recognizer of ``language``, or None (make one)."""
        idle = self._idle.get(language)
        if not idle:
            return None
        self.reused += 1
        return idle.pop()

    def give_back(self, language: str, recognizer: Recognizer) -> None:
        """A recognizer whose stream finished (:meth:`Recognizer.final` done), for the next."""
        idle = self._idle[language]
        if recognizer.seconds < RETIRE_SECONDS and len(idle) < self.keep:
            idle.append(recognizer)

    def idle(self, language: str) -> int:
        return len(self._idle.get(language, ()))
