"""Which answered calls get a transcript: only those in a language a configured model speaks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from cti_server.bus import MemoryBus
from cti_server.config import SpeechSettings, TranscriptionSettings
from cti_server.events import CallTranscribed, IvrFinished
from cti_server.speech.models import SpeechModels
from cti_server.speech.transcription import TranscriptionService
from tests.support.domain_events import ended
from tests.unit.speech.taps import answered


def _service(tmp_path: Path) -> tuple[TranscriptionService, MemoryBus]:
    korean = tmp_path / "ko-model"
    (korean / "am").mkdir(parents=True)
    speech = SpeechSettings(models={"ko": korean})
    bus = MemoryBus()
    service = TranscriptionService(
        TranscriptionSettings(live=False),
        speech,
        bus,
        cast(Any, None),  # no AMI: post-call only
        cast(Any, None),
        SpeechModels(speech.models),
    )
    service.attach()
    return service, bus


def _ivr(linkedid: str, language: str) -> IvrFinished:
    return IvrFinished(
        node="n1",
        linkedid=linkedid,
        flow="main",
        outcome="transfer",
        queue="support",
        attributes={"language": language},
        path=[],
        inputs={},
        customer_id=None,
        at=datetime.now(UTC),
    )


@pytest.mark.asyncio
async def test_a_call_in_a_language_no_model_speaks_gets_no_transcript(tmp_path: Path) -> None:
    """An English caller with only a Korean model: no nonsense transcript for the complaint
    detector, and the complaint watch knows to judge the call on its facts."""
    service, bus = _service(tmp_path)
    bus.publish(_ivr("english-call", "en"))
    bus.publish(answered("english-call"))
    bus.publish(_ivr("korean-call", "ko"))
    bus.publish(answered("korean-call"))
    bus.publish(answered("no-ivr-call"))  # no language from the IVR: the default model
    await service.settled()
    assert not service.follows("english-call")
    assert service.follows("korean-call")
    assert service.follows("no-ivr-call")
    await service.close()


@pytest.mark.asyncio
async def test_a_call_that_cannot_be_transcribed_says_so_at_once(tmp_path: Path) -> None:
    """No recording to decode: ``CallTranscribed(mode="failed")`` comes when the call ends, so
    the complaint watch judges its facts now instead of waiting for a transcript."""
    service, bus = _service(tmp_path)  # post-call only, and no recordings folder configured
    transcripts: list[CallTranscribed] = []
    bus.listen((CallTranscribed,), lambda e: transcripts.append(cast(CallTranscribed, e)))
    now = datetime.now(UTC)
    bus.publish(answered("lost-call"))
    await service.settled()
    bus.publish(
        ended(
            "lost-call",
            "1001",
            node="n1",
            caller="+8613900000001",
            caller_name="",
            arrived_at=now,
            queued_after=0,
            offered_after=0,
            answered_after=0,
        )
    )
    await service.settled()
    assert [(t.linkedid, t.mode, t.segments) for t in transcripts] == [("lost-call", "failed", [])]
    assert not service.follows("lost-call")
    await service.close()
