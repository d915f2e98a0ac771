"""Recognizers kept warm between streams: a reused one times a new stream's words from that
stream's start, and decodes a call's first words with less work than a new one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cti_server.speech.decoder import (
    RecognisedUtterance,
    StreamDecoder,
    model_rate,
    read_call_audio,
)
from cti_server.speech.recognizers import RETIRE_SECONDS, Recognizer, WarmRecognizers

CHUNK = 3200  # a fifth of a second, as a live tap feeds it


@pytest.fixture(scope="module")
def pcm(spoken: Path) -> bytes:
    """A caller's words between silences, as the tap hears them."""
    return bytes(16000) + read_call_audio(spoken) + bytes(16000)


def _decode(decoder: StreamDecoder, pcm: bytes) -> list[RecognisedUtterance]:
    segments: list[RecognisedUtterance] = []
    for at in range(0, len(pcm), CHUNK):
        segments += decoder.feed(pcm[at : at + CHUNK])
    return segments + decoder.finish()


def _cpu(decoder: StreamDecoder, pcm: bytes) -> float:
    started = time.thread_time()
    _decode(decoder, pcm)
    return time.thread_time() - started


def test_a_reused_recognizer_hears_the_next_stream_as_a_new_one_would(
    ko_dir: Path, ko_model: Any, pcm: bytes
) -> None:
    rate = model_rate(ko_dir)
    first = StreamDecoder(ko_model, rate, "customer", offset=5.0)
    fresh = _decode(first, pcm)
    assert fresh
    assert first.finished
    # the same recognizer, for another call's stream that starts 2 s into its call
    again = _decode(StreamDecoder(ko_model, rate, "agent", 2.0, first.recognizer), pcm)
    # Vosk's words for the same audio vary a little from one recognizer to the next (two new
    # ones differ too), so what is compared is when the words were said: from the stream's
    # start, not from the first sample the recognizer heard (a whole stream ago)
    assert len(again) == len(fresh)
    times = [t for s in again for t in (s.start, s.end)]
    assert times == pytest.approx([t - 3.0 for s in fresh for t in (s.start, s.end)], abs=0.1)
    assert all(s.speaker == "agent" and s.text for s in again)


def test_a_warm_recognizer_decodes_the_first_words_with_less_work(
    ko_dir: Path, ko_model: Any, pcm: bytes
) -> None:
    rate = model_rate(ko_dir)
    cold = _cpu(StreamDecoder(ko_model, rate, "customer"), pcm)
    recognizer = Recognizer(ko_model, rate)
    recognizer.warm()
    warm = _cpu(StreamDecoder(ko_model, rate, "customer", recognizer=recognizer), pcm)
    assert warm < 0.8 * cold, f"warm {warm:.2f} s of CPU, new {cold:.2f} s"


class _Used(Recognizer):
    """A recognizer that says it has heard ``seconds`` of audio (none is decoded)."""

    def __init__(self, seconds: float) -> None:
        self.rate = 16000
        self._samples = round(seconds * self.rate)


def test_idle_recognizers_are_kept_up_to_the_bound_and_retire_when_old() -> None:
    idle = WarmRecognizers(keep=2)
    assert idle.take("ko") is None
    young, other, extra, old = _Used(60), _Used(60), _Used(60), _Used(RETIRE_SECONDS + 1)
    for recognizer in (young, other, extra, old):
        idle.give_back("ko", recognizer)
    assert idle.idle("ko") == 2  # the third is dropped, the old one retired
    assert idle.take("en") is None  # a model serves only its own language
    assert idle.take("ko") is other  # the last used first: its cache is the warmest
    assert idle.take("ko") is young
    assert idle.take("ko") is None
    assert idle.reused == 2
