"""Calls on the real Asterisk against `cti serve` running in the test's own process.

The integration tests serve the application here (so they can watch its bus and database),
place a customer's call into the inbound context, let the caller walk the IVR as scripted and
wait for what the test is about: the caller in the queue, the call answered and done, or hung up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Literal

from aiohttp import web
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction
from cti_server.app import AMI, DATABASE, SCHEMA_READY, SPEECH, build_app
from cti_server.config import (
    IvrSettings,
    RecorderSettings,
    Settings,
    SpeechSettings,
    TranscriptionSettings,
)
from cti_server.sim.simulation import SimulatedCall, place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.support.agi import classic_agi, with_classic_agi
from tests.support.asterisk import AsteriskNode
from tests.support.waiting import EventLog, agent_complete, event_is, poll_until

Until = Literal["queued", "answered", "hung_up"]


def _waited_for(until: Until, call: SimulatedCall) -> Callable[[Message], bool]:
    if until == "queued":
        return event_is("QueueCallerJoin", Linkedid=call.uniqueid)
    if until == "answered":
        return agent_complete(call.uniqueid)  # answered, talked and done
    return event_is("Hangup", Uniqueid=call.uniqueid)


def own_crm(settings: Settings, tmp_path: Path, database: str = "crm.db") -> Settings:
    """``settings`` with a CRM database and a recorder journal of the test's own."""
    return settings.model_copy(
        update={
            "recorder": RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
            "database": settings.database.model_copy(
                update={"url": f"sqlite+aiosqlite:///{tmp_path / database}"}
            ),
        }
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[web.Application]:
    """`cti serve`'s application in this process: listening, its AMI link up."""
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.http.port).start()
    try:
        await app[AMI].wait_connected(10.0)
        yield app
    finally:
        await runner.cleanup()


async def schema_ready(app: web.Application) -> None:
    """Wait until the server has brought its CRM database to the current schema."""

    async def _is_set() -> bool:
        return app[SCHEMA_READY].is_set()

    await poll_until(_is_set, 30, what="schema ready")


@asynccontextmanager
async def running_ivr_app(
    node: AsteriskNode,
    tmp_path: Path,
    ivr: IvrSettings,
    speech: SpeechSettings | None = None,
    transcription: TranscriptionSettings | None = None,
) -> AsyncIterator[web.Application]:
    """`cti serve` in this process with the IVR on, its own database and journal; on
    ``ivr.transport = "agi"`` Asterisk runs ``cti-agi`` per call, which asks this server."""
    settings = own_crm(node.settings, tmp_path, "ivr.db").model_copy(
        update={
            "ivr": ivr,
            "speech": speech or node.settings.speech,
            "transcription": transcription or node.settings.transcription,
        }
    )
    classic = ivr.transport == "agi"
    if classic:
        settings = with_classic_agi(settings)
    async with serving(settings) as app:
        await schema_ready(app)
        # callers ring once the spoken menus have their models (loading one takes seconds of
        # CPU, begun at start): a first call seconds after a start is not what these tests test
        await app[SPEECH].preload()
        async with classic_agi(node, settings, tmp_path) if classic else nullcontext():
            yield app


async def call_through_ivr(
    ami: tuple[AmiClient, EventLog],
    node: AsteriskNode,
    number: str,
    name: str = "",
    *,
    until: Until | None = None,
    within: float = 30,
    dtmf: str = "",
    audio: str = "",
    dialed: str = "100",
    pre_wait: float = 1.0,
    patience: float = 60.0,
) -> SimulatedCall:
    """A customer calls ``node``'s inbound context from ``number``: after ``pre_wait`` seconds
    plays ``audio`` and presses ``dtmf`` (SendDTMF's keys; ``w`` is half a second's pause), then
    waits ``patience`` seconds for an agent. Returns once the call is ``until`` (within
    ``within`` seconds), else as soon as Asterisk took the call."""
    client, log = ami
    call = await place_customer_call(
        client,
        context=node.settings.dialplan.inbound_context,
        number=number,
        name=name,
        dialed=dialed,
        audio=audio,
        dtmf=dtmf,
        pre_wait=pre_wait,
        patience=patience,
    )
    if until is not None:
        await log.wait_for(_waited_for(until, call), within, f"the call {until}")
    return call


async def ivr_variables(log: EventLog, call: SimulatedCall) -> dict[str, str]:
    """The ``CTI_*`` channel variables the IVR set on the call, once it joined a queue."""
    await log.wait_for(event_is("QueueCallerJoin", Linkedid=call.uniqueid), 40, "queue join")
    return {
        str(e["Variable"]): str(e.get("Value", ""))
        for e in log.events
        if e.get("Event") == "VarSet"
        and e.get("Linkedid") == call.uniqueid
        and str(e.get("Variable", "")).startswith("CTI_")
    }


def interaction_ended(row: Interaction) -> bool:
    return row.ended_at is not None


def ended_with_ivr_path(row: Interaction) -> bool:
    return row.ended_at is not None and bool(row.ivr_path)


async def stored_interaction(
    app: web.Application,
    call: SimulatedCall,
    *,
    within: float = 60,
    ready: Callable[[Interaction], bool] = ended_with_ivr_path,
    what: str = "the interaction with its IVR path",
) -> Interaction:
    """The call's interaction in the server's CRM, once ``ready`` holds for it."""
    sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)

    async def _found() -> Interaction | None:
        async with sessions() as session:
            row = await session.scalar(
                select(Interaction).where(Interaction.external_key.endswith(call.uniqueid))
            )
        return row if row is not None and ready(row) else None

    return await poll_until(_found, within, what=what)
