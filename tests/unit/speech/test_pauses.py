"""A speaker's pause, heard in the audio as it arrives, closes the utterance then: the line is
ready about ``end_silence`` after the speech ended, not half a second later when the
recognizer (which decodes behind the audio it was given) would have seen the pause itself.

Measured in audio fed, not in time on the clock, so that a loaded machine cannot fail them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cti_server.speech.decoder import (
    CALL_RATE,
    RecognisedUtterance,
    StreamDecoder,
    model_rate,
    read_call_audio,
)
from cti_server.speech.pauses import PauseDetector
from cti_server.speech.tap import CHUNK_BYTES, most_filler

FRAME = 320  # 20 ms, as AudioSocket brings it
END_SILENCE = 0.4


def _tone(seconds: float, dbfs: float) -> bytes:
    t = np.arange(round(CALL_RATE * seconds)) / CALL_RATE
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    return bytes((amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16).tobytes())


def _noise(seconds: float, rms: float, seed: int = 5) -> bytes:
    noise = np.random.default_rng(seed).normal(0.0, rms, round(CALL_RATE * seconds))
    return noise.astype(np.int16).tobytes()


def _heard_at(detector: PauseDetector, pcm: bytes) -> list[float]:
    """Where (seconds into ``pcm``) the detector said a pause was complete."""
    return [
        (at + FRAME) / (2 * CALL_RATE)
        for at in range(0, len(pcm), FRAME)
        if detector.hear(pcm[at : at + FRAME])
    ]


@pytest.mark.parametrize("line_rms", [0.0, 10.0, 300.0])
def test_a_pause_after_speech_is_heard_once_as_it_completes(line_rms: float) -> None:
    """On a silent line, a quiet one and a noisy one (-40 dBFS) alike."""
    pcm = _noise(1.0, line_rms) + _tone(1.5, -12) + _noise(2.0, line_rms, seed=6)
    heard = _heard_at(PauseDetector(END_SILENCE), pcm)
    assert heard == [pytest.approx(2.5 + END_SILENCE, abs=0.021)]


def test_no_pause_without_words_before_it() -> None:
    """A click is not speech, and a line that never goes quiet (music) has no pause: the
    recognizer's own endpoint closes those utterances."""
    click = _noise(1.0, 10.0) + _tone(0.04, -12) + _noise(2.0, 10.0, seed=6)
    assert _heard_at(PauseDetector(END_SILENCE), click) == []
    music = _tone(1.0, -12) + _tone(3.0, -20)
    assert _heard_at(PauseDetector(END_SILENCE), music) == []


def test_a_short_gap_inside_speech_is_no_pause() -> None:
    pcm = _tone(1.0, -12) + _noise(0.25, 10.0) + _tone(1.0, -12) + _noise(1.0, 10.0, seed=6)
    assert _heard_at(PauseDetector(END_SILENCE), pcm) == [
        pytest.approx(2.25 + END_SILENCE, abs=0.021)
    ]


@pytest.fixture(scope="module")
def call(spoken: Path) -> tuple[bytes, list[float]]:
    """A caller's words twice, each followed by two seconds of a quiet line; where each ends."""
    words = read_call_audio(spoken)
    gap = _noise(2.0, 10.0)
    pcm = _noise(1.0, 10.0, seed=7) + words + gap + words + gap
    said = len(words) / (2 * CALL_RATE)
    return pcm, [1.0 + said, 3.0 + 2 * said]


def _as_the_tap_feeds(
    decoder: StreamDecoder, pcm: bytes, pauses: PauseDetector | None, filler: list[float]
) -> list[tuple[float, RecognisedUtterance]]:
    """Each line, with the audio fed (seconds) when the decoder gave it; ``filler``: what each
    pause took."""
    lines: list[tuple[float, RecognisedUtterance]] = []
    buffer = b""
    for at in range(0, len(pcm), FRAME):
        frame = pcm[at : at + FRAME]
        buffer += frame
        if pauses is not None and pauses.hear(frame):
            most = most_filler(END_SILENCE)
            closed = decoder.close(buffer, pauses.noise_rms, most, pauses.threshold)
            filler.append(decoder.filler)
        elif len(buffer) >= CHUNK_BYTES:
            closed = decoder.feed(buffer)
        else:
            continue
        buffer = b""
        lines += [((at + FRAME) / (2 * CALL_RATE), line) for line in closed]
    return lines + [(len(pcm) / (2 * CALL_RATE), line) for line in decoder.finish()]


def test_a_line_is_ready_as_the_pause_completes_and_timed_in_the_call(
    ko_dir: Path, ko_model: Any, call: tuple[bytes, list[float]], spoken: Path
) -> None:
    pcm, ends = call
    rate = model_rate(ko_dir)
    waited = _as_the_tap_feeds(StreamDecoder(ko_model, rate, "customer"), pcm, None, [])
    decoder, filler = StreamDecoder(ko_model, rate, "customer"), list[float]()
    paused = _as_the_tap_feeds(decoder, pcm, PauseDetector(END_SILENCE), filler)
    assert len(paused) == len(waited) == 2
    for end, (ready, line), (ready_before, _) in zip(ends, paused, waited, strict=True):
        assert line.text
        # the voice's last sound fades out a little before its file ends
        assert end - 0.3 < ready <= end + END_SILENCE + 0.05
        assert ready_before - ready >= 0.3  # the recognizer alone saw the pause that much later
    # the filler the first pause took is not the call's: the second line is timed as before
    for (_, line), (_, before) in zip(paused, waited, strict=True):
        assert (line.start, line.end) == pytest.approx((before.start, before.end), abs=0.15)
    # and the quiet after each pause repaid it: the recognizer heard no more audio than before
    assert len(filler) == 2
    assert 0 < sum(filler) <= 2 * most_filler(END_SILENCE)
    assert decoder.repaid == pytest.approx(sum(filler), abs=0.021)
