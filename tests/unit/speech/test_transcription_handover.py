"""A customer handed over is still heard: the new party is tapped, so the live transcript goes on
with whoever the customer talks to (and is what the next one reads as "said so far")."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from cti_server.bus import MemoryBus
from cti_server.config import SpeechSettings, TranscriptionSettings
from cti_server.events import CallAnswered, CallTransferred
from cti_server.speech.models import SpeechModels
from cti_server.speech.transcription import TranscriptionService
from tests.support.fakes import FakeAmiLink
from tests.support.waiting import poll_until
from tests.unit.speech.taps import TapListener


def _spied(ami: FakeAmiLink) -> list[str]:
    """The channels the service's Originates tapped (each would go to Asterisk), in order."""
    return [
        next(v for v in fields["Variable"] if v.startswith("SPYON="))[6:]
        for fields in ami.actions("Originate")
    ]


@pytest.mark.asyncio
async def test_the_new_party_of_a_handed_over_call_is_tapped(
    ko_dir: Path, listener: TapListener
) -> None:
    speech = SpeechSettings(models={"ko": ko_dir})
    bus, ami = MemoryBus(), FakeAmiLink()
    service = TranscriptionService(
        TranscriptionSettings(live=True, language="ko"),
        speech,
        bus,
        cast(Any, ami),
        cast(Any, listener),
        SpeechModels(speech.models),
    )
    service.attach()
    now = datetime.now(UTC)
    bus.publish(
        CallAnswered(
            node="n1",
            linkedid="L1",
            queue="support",
            agent="agent-1001",
            waited_seconds=3.0,
            caller_channel="PJSIP/trunk-00000001",
            agent_channel="PJSIP/1001-00000002",
            at=now,
        )
    )

    async def _tapped(count: int) -> bool:
        return len(_spied(ami)) >= count

    await poll_until(lambda: _tapped(2), 30, what="both sides tapped")
    transferred = CallTransferred(
        node="n1",
        linkedid="L1",
        kind="blind",
        from_party="PJSIP/1001",
        from_extension="1001",
        from_agent="agent-1001",
        to_party="PJSIP/1002",
        to_extension="1002",
        to_agent="agent-1002",
        by="PJSIP/1001",
        caller_number="+8613800138000",
        caller_name="",
        queue="support",
        customer_channel="PJSIP/trunk-00000001",
        party_channel="PJSIP/1002-00000005",
        segment=1,
        at=now,
    )
    bus.publish(transferred)
    await poll_until(lambda: _tapped(3), 30, what="the new party tapped")
    assert _spied(ami) == ["PJSIP/trunk-00000001", "PJSIP/1001-00000002", "PJSIP/1002-00000005"]
    assert len(listener.streams) == 3
    bus.publish(dataclasses.replace(transferred, linkedid="other"))
    await service.settled()
    assert len(_spied(ami)) == 3, "a call the service does not follow is not tapped"
    await service.close()
