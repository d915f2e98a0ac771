"""The transcription pipeline's parts: decoding with times, the pool's admission, a lagging tap."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cti_server.cli.main import main
from cti_server.speech.audiosocket import KIND_AUDIO
from cti_server.speech.decoder import CALL_RATE, StreamDecoder, decode_file, model_rate
from cti_server.speech.pool import DecodePool
from cti_server.speech.tap import TapStream


def test_a_recording_decodes_into_timed_segments_from_the_offset(
    ko_dir: Path, ko_model: Any, spoken: Path
) -> None:
    segments = decode_file(ko_model, model_rate(ko_dir), spoken, "customer", offset=2.0)
    assert segments
    for segment in segments:
        assert segment.speaker == "customer"
        assert 2.0 <= segment.start < segment.end < 2.0 + 10
        assert [w["word"] for w in segment.words] == segment.text.split()
        assert 0 < segment.confidence <= 1


def test_silence_gives_no_segment(ko_dir: Path, ko_model: Any) -> None:
    decoder = StreamDecoder(ko_model, model_rate(ko_dir), "agent")
    assert decoder.feed(b"\0" * 4 * CALL_RATE) == []
    assert decoder.finish() == []
    assert decoder.seconds == 2.0


def test_live_calls_are_admitted_up_to_the_capacity() -> None:
    pool = DecodePool(workers=1, max_live_calls=2)
    try:
        assert [pool.admit_live() for _ in range(3)] == [True, True, False]
        assert pool.counters.refused_live == 1
        pool.release_live()
        assert pool.admit_live()
    finally:
        pool.close()


@pytest.mark.asyncio
async def test_a_tap_that_falls_behind_stops_decoding_and_says_so(
    ko_dir: Path, ko_model: Any
) -> None:
    pool = DecodePool(workers=1)
    stream = TapStream(StreamDecoder(ko_model, model_rate(ko_dir), "customer"), pool, max_lag=0.5)
    reader = asyncio.StreamReader()
    frame = struct.pack(">BH", KIND_AUDIO, 320) + b"\1\0" * 160
    reader.feed_data(frame * 500)  # 10 s arriving at once: far more than half a second behind
    reader.feed_eof()
    try:
        await asyncio.wait_for(stream.consume(reader), 30)
    finally:
        pool.close()
    assert stream.degraded
    assert stream.segments == []
    assert stream.finished.is_set()


def test_cti_speech_check_says_whether_a_model_can_serve(ko_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(main, ["speech", "check", str(ko_dir), "--word", "상담원"])
    assert good.exit_code == 0, good.output
    assert "ok, features at 16000 Hz" in good.output
    assert runner.invoke(main, ["speech", "check", str(tmp_path)]).exit_code == 1
    unknown = runner.invoke(main, ["speech", "check", str(ko_dir), "--word", "zzzqqq"])
    assert unknown.exit_code == 1
