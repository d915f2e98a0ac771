"""Transcription's back-pressure: no new live call while a live stream is behind, post-call work
that cannot take every decoding thread from live taps, and /metrics saying how calls went."""

from __future__ import annotations

import asyncio
import struct
import threading
from typing import Any, cast

import pytest
from prometheus_client import generate_latest

from cti_server.health.metrics import CtiCollector, make_registry
from cti_server.speech.audiosocket import KIND_AUDIO
from cti_server.speech.decoder import RecognisedUtterance, StreamDecoder
from cti_server.speech.pool import DecodePool
from cti_server.speech.tap import TapStream
from cti_server.tracker.tracker import Tracker
from tests.support.waiting import poll_until


class _Behind:
    def __init__(self, lag: float) -> None:
        self.lag_seconds = lag


def test_no_live_call_is_admitted_while_a_live_stream_is_behind() -> None:
    pool = DecodePool(workers=2, max_live_calls=10, max_lag=10.0)
    try:
        stream = _Behind(6.0)  # past half of max_lag
        pool.watch(stream)
        assert not pool.admit_live()
        assert (pool.counters.refused_live, pool.counters.refused_lagging) == (1, 1)
        stream.lag_seconds = 4.0
        assert pool.admit_live()
        pool.unwatch(stream)
        assert pool.lag_seconds == 0.0
    finally:
        pool.close()


class _SlowDecoder:
    """A recognizer stuck in its first chunk until released, as Kaldi on a busy core."""

    speaker = "customer"
    partial = ""

    def __init__(self) -> None:
        self.release = threading.Event()

    def feed(self, _pcm: bytes) -> list[RecognisedUtterance]:
        self.release.wait(30)
        return []

    def finish(self) -> list[RecognisedUtterance]:
        return []


@pytest.mark.asyncio
async def test_a_live_tap_that_waits_for_its_decoder_holds_back_new_live_calls() -> None:
    pool = DecodePool(workers=1, max_live_calls=10, max_lag=4.0)
    decoder = _SlowDecoder()
    stream = TapStream(cast(StreamDecoder, decoder), pool, max_lag=4.0)
    reader = asyncio.StreamReader()
    frame = struct.pack(">BH", KIND_AUDIO, 320) + b"\1\0" * 160
    consuming = asyncio.create_task(stream.consume(reader))
    try:
        reader.feed_data(frame * 150)  # 3 s: half a second decoding, 2.5 s waiting behind it

        async def behind() -> bool:
            return stream.lag_seconds > 2.0

        await poll_until(behind, 10, what="the tap behind its decoder")
        assert not pool.admit_live()
        decoder.release.set()
        reader.feed_eof()
        await asyncio.wait_for(consuming, 30)
        assert not stream.degraded  # behind, not past max_lag: it caught up
        assert pool.lag_seconds == 0.0
        assert pool.admit_live()
    finally:
        decoder.release.set()
        pool.close()


@pytest.mark.asyncio
async def test_post_call_work_queues_and_leaves_a_thread_to_live_taps() -> None:
    pool = DecodePool(workers=2)
    stuck = threading.Event()
    entered: list[str] = []

    async def post_call(name: str) -> None:
        async with pool.post_call():
            entered.append(name)
            await pool.run(stuck.wait, 30)

    first = asyncio.create_task(post_call("first"))
    second = asyncio.create_task(post_call("second"))
    try:

        async def queued() -> bool:
            return pool.post_call_backlog == 2 and entered == ["first"]

        await poll_until(queued, 10, what="one post-call decoding, one waiting")
        # a live chunk still finds a thread while post-call work is stuck
        assert await asyncio.wait_for(pool.run(sum, [1, 2]), 10) == 3
        assert entered == ["first"]
    finally:
        stuck.set()
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        pool.close()
    assert entered == ["first", "second"]
    assert pool.post_call_backlog == 0


def test_metrics_say_how_calls_were_transcribed() -> None:
    pool = DecodePool(workers=1, max_live_calls=1, max_lag=10.0)
    try:
        assert pool.admit_live()
        assert not pool.admit_live()  # no room: after the call
        pool.counters.degraded_calls = 1
        pool.counters.failed_calls = 2
        pool.post_call_backlog = 3

        class _Stub:
            last_lag = 0.0
            stalls = 0

            def status(self) -> dict[str, int]:
                return {"spooled": 0, "written": 0, "dropped": 0}

        stub: Any = _Stub()
        collector = CtiCollector(Tracker(lambda _e: None), [], stub, stub, stub, decoding=pool)
        text = generate_latest(make_registry(collector)).decode()
    finally:
        pool.close()
    for line in (
        "cti_transcription_live_admitted_total 1.0",
        "cti_transcription_live_refused_total 1.0",
        "cti_transcription_fell_behind_total 1.0",
        "cti_transcription_failed_total 2.0",
        "cti_transcription_post_call_backlog 3.0",
        "cti_transcription_live_now 1.0",
    ):
        assert line in text.splitlines(), line
