"""Where a speaker stopped, heard in the call's audio as it arrives rather than in what the
recognizer has decoded.

Vosk closes an utterance when its decoded output ends in ``end_silence`` of silence phones; but
its network reads ahead of what it has decoded (the packaged Korean model: its right context
plus the 0.21 s it computes at a time, about half a second), so an utterance closed about
``end_silence`` + 0.5 s of audio after the speech ended, before any CPU or queueing
(``bench/transcript_latency.py --offline``, the bench's recordings, ``end_silence`` 0.4: p50
1.13 s, p95 1.36 s, max 1.8 s of audio; with the pauses heard, p50 0.49 s, p95 0.61 s, for about
50 ms more CPU in the call that closes the line and the same CPU per stream). A live tap hears each
frame of the call 20 ms after it is said, so it can measure the pause itself: this detector
follows the frames' loudness against the line's noise floor, and says so the moment
``end_silence`` of quiet follows speech. The decoder is then made to catch up at once
(:meth:`cti_server.speech.decoder.StreamDecoder.close`): the recognizer's own endpoint still
decides whether the utterance has ended.

Quiet is relative, so that it works on a silent line and a noisy one alike: a frame is speech
when it is clearly above the line's floor (which follows the quietest frames down at once and
rises slowly), not far below the utterance's loudest, and above a level no telephone speech is
quieter than. A line with no quiet at all (music, loud noise) never says a pause was heard, and
the recognizer's own endpoint closes its utterances as before.
"""

from __future__ import annotations

import math

import numpy as np

FLOOR_MARGIN_DB = 12.0  # speech is this far above the line's noise floor, at least
PEAK_RANGE_DB = 35.0  # and no further below the utterance's loudest frame than this
SPEECH_MIN_DBFS = -55.0  # quieter than this is never speech on a telephone line
FLOOR_RISE_DB = 0.5  # a second: the floor follows a line that gets noisier, slowly
MIN_SPEECH_SECONDS = 0.1  # of loud frames since the last pause: less was a click, not words
_SILENT_DBFS = -100.0  # the level of digital silence (all zeros)


def level_dbfs(samples: np.ndarray) -> float:
    """The mean power of 16-bit samples, in dB below full scale."""
    if not len(samples):
        return _SILENT_DBFS
    power = float(np.mean(np.square(samples, dtype=np.float64))) / 32768.0**2
    return max(_SILENT_DBFS, 10.0 * math.log10(power)) if power > 0 else _SILENT_DBFS


class PauseDetector:
    """Feed it a stream's audio (8 kHz signed 16-bit) as it arrives; :meth:`hear` is True once
    for each pause of ``end_silence`` seconds that follows speech."""

    def __init__(self, end_silence: float, rate: int = 8000) -> None:
        self.end_silence = end_silence
        self.rate = rate
        self._floor: float | None = None  # dBFS
        self._peak = _SILENT_DBFS  # the loudest frame of the speech since the last pause
        self._speech = 0.0  # seconds of speech since the last pause
        self._quiet = 0.0  # seconds of quiet since the last speech
        self.threshold = SPEECH_MIN_DBFS  # the level above which the last frame was speech

    @property
    def noise_rms(self) -> float:
        """The line's noise floor, in 16-bit sample units: the level of the decoder's filler
        (the mean level of a pause, which holds a word's quiet tail, was heard as a fricative)."""
        floor = _SILENT_DBFS if self._floor is None else self._floor
        return float(32768.0 * 10.0 ** (floor / 20.0))

    def hear(self, pcm: bytes) -> bool:
        """One frame (any length; AudioSocket's are 20 ms): True when it completes a pause."""
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
        if not len(samples):
            return False
        seconds = len(samples) / self.rate
        level = level_dbfs(samples)
        if self._floor is None or level < self._floor:
            self._floor = level
        else:
            self._floor += FLOOR_RISE_DB * seconds
        threshold = max(self._floor + FLOOR_MARGIN_DB, self._peak - PEAK_RANGE_DB, SPEECH_MIN_DBFS)
        self.threshold = threshold
        if level > threshold:
            self._speech += seconds
            self._peak = max(self._peak, level)
            self._quiet = 0.0
            return False
        self._quiet += seconds
        if self._speech >= MIN_SPEECH_SECONDS and self._quiet >= self.end_silence - 1e-9:
            self._speech, self._peak = 0.0, _SILENT_DBFS
            return True
        return False
