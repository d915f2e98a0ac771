"""The live taps of a call decode on recognizers warmed before it, and give them back for the next
call when they end: no call's first words wait for a cold recognizer."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any, cast

import pytest

from cti_server.bus import MemoryBus
from cti_server.config import SpeechSettings, TranscriptionSettings
from cti_server.events import CallTranscribed, DomainEvent
from cti_server.speech.audiosocket import HANGUP, KIND_AUDIO
from cti_server.speech.decoder import read_call_audio
from cti_server.speech.models import SpeechModels
from cti_server.speech.tap import TapStream
from cti_server.speech.transcription import TranscriptionService
from tests.support.domain_events import ended
from tests.support.fakes import FakeAmiLink
from tests.support.waiting import poll_until
from tests.unit.speech.taps import TapListener, answered


def _frames(pcm: bytes) -> bytes:
    """AudioSocket's audio frames (20 ms each), then its hang-up."""
    frames = b"".join(
        struct.pack(">BH", KIND_AUDIO, len(pcm[at : at + 320])) + pcm[at : at + 320]
        for at in range(0, len(pcm), 320)
    )
    return frames + HANGUP


async def _stream(tap: TapStream, pcm: bytes) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(_frames(pcm))
    reader.feed_eof()
    tap.connected.set()
    await tap.consume(reader)


@pytest.mark.asyncio
async def test_taps_decode_on_warm_recognizers_and_give_them_back(
    ko_dir: Path, spoken: Path, listener: TapListener
) -> None:
    speech = SpeechSettings(models={"ko": ko_dir})
    bus, ami = MemoryBus(), FakeAmiLink()
    service = TranscriptionService(
        TranscriptionSettings(live=True, language="ko", max_live_calls=1),
        speech,
        bus,
        cast(Any, ami),
        cast(Any, listener),
        SpeechModels(speech.models),
    )
    transcripts: list[CallTranscribed] = []

    def _keep(event: DomainEvent) -> None:
        if isinstance(event, CallTranscribed):
            transcripts.append(event)

    bus.listen((CallTranscribed,), _keep)
    pcm = bytes(8000) + read_call_audio(spoken) + bytes(8000)
    service.attach()
    try:

        async def _warm() -> bool:
            return service.recognizers.idle("ko") == 2  # both sides of the one live call

        await poll_until(_warm, 60, interval=0.2, what="recognizers warmed at start")
        for number, linkedid in enumerate(("first", "second"), start=1):
            bus.publish(answered(linkedid))

            async def _tapped() -> bool:
                return len(listener.streams) == 2

            await poll_until(_tapped, 30, what="both sides tapped")
            assert service.recognizers.idle("ko") == 0, "the taps took the warm recognizers"
            assert service.recognizers.reused == 2 * number
            await asyncio.gather(*(_stream(tap, pcm) for tap in listener.streams))
            listener.streams.clear()
            bus.publish(ended(linkedid, "1001"))
            await service.settled()
            assert transcripts[-1].mode == "live"
            assert any(s["speaker"] == "customer" for s in transcripts[-1].segments)
            assert service.recognizers.idle("ko") == 2, "given back for the next call"
    finally:
        await service.close()
