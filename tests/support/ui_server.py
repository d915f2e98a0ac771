"""The agent UI wired as the composition root wires it: the tracker as its live model, the AMI
agent control (its link never connects), the server's redaction, recordings and complaint
categories, and a router's supervisor controls when routing is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.app import create_ui
from agent_ui.deps import DEPS, UiDeps
from agent_ui.wallboard import WALLBOARD, Wallboard
from cti_server.bus import MemoryBus
from cti_server.complaints.signals import CATEGORIES
from cti_server.config import AmiSettings, UiSettings
from cti_server.ivr.identification import CallerIdentification
from cti_server.routing.inputs import personal_queue
from cti_server.routing.supervision import RouterSupervision
from cti_server.speech.desk_redaction import SequenceRedaction
from cti_server.speech.transcription import recording_names
from cti_server.telephony.agent_control import AmiAgentControl
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.tracker import Tracker

NODE = "pbx1"
REGION = "CN"


class Steerable(Protocol):
    """The router's supervisor controls, as a test's fake router offers them."""

    def snapshot(self) -> dict[str, Any]: ...

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]: ...

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]: ...


def ui_deps(
    db: async_sessionmaker[AsyncSession],
    bus: MemoryBus,
    tracker: Tracker,
    *,
    settings: UiSettings | None = None,
    routing: Steerable | None = None,
    transfer_queues: tuple[str, ...] = ("support", "sales"),
    recordings_path: Path | None = None,
) -> UiDeps:
    """The UI's share of a server on ``pbx1`` whose AMI link never connects: agents join
    support (routing on: their own queue and the fallback)."""
    settings = settings or UiSettings()
    link = AmiClient(AmiSettings(secret="never-used", port=9), on_event=lambda _message: None)
    control = AmiAgentControl(
        settings,
        node=NODE,
        links={NODE: link},
        live=tracker,
        publish=bus.publish,
        queues=("fallback",) if routing is not None else ("support",),
        transfer_queues=transfer_queues,
        own_queue=personal_queue if routing is not None else None,
    )
    return UiDeps(
        settings=settings,
        region=REGION,
        node=NODE,
        bus=bus,
        live=tracker,
        control=control,
        db=db,
        redaction=SequenceRedaction(REGION),
        recording_names=recording_names,
        complaint_categories=CATEGORIES,
        recordings_path=recordings_path,
        routing=RouterSupervision(routing) if routing is not None else None,
    )


def mounted(deps: UiDeps) -> web.Application:
    """``/ui`` alone in an application that identifies callers (``CustomerIdentified``, for
    the pops) and closes the agent control as the server does."""
    root = web.Application()
    root.add_subapp("/ui", create_ui(deps))
    identification = CallerIdentification(deps.db, deps.region)
    identification.subscribe(deps.bus)

    async def close(_app: web.Application) -> None:
        assert isinstance(deps.control, AmiAgentControl)
        await deps.control.close()
        await identification.close()

    root.on_cleanup.append(close)
    return root


def control_of(app: web.Application) -> AmiAgentControl:
    """The agent control of an application built by :func:`mounted`."""
    control = app._subapps[0][DEPS].control
    assert isinstance(control, AmiAgentControl)
    return control


def wallboard_of(app: web.Application) -> Wallboard:
    """The wallboard of an application built by :func:`mounted`."""
    return app._subapps[0][WALLBOARD]
