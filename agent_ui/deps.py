"""What the web application is given by the composition root, and where it keeps its parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.login_throttle import LoginGuard
from cti_server.bus import Bus
from cti_server.config import UiSettings
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.tracker import Tracker


class RoutingControl(Protocol):
    """The router's supervisor controls, called in-process (``cti_server.routing.router``).

    ``move`` and ``change_priority`` raise ``RoutingError`` for a call that does not wait or an
    agent not signed in for routing; each returns the call's view (its priority terms)."""

    def snapshot(self) -> dict[str, Any]: ...

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]: ...

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UiDeps:
    """Everything ``agent_ui`` uses of the server: injected, never looked up."""

    settings: UiSettings
    region: str  # for phone numbers typed without a country code
    node: str  # the Asterisk node the users' phones are on
    queues: tuple[str, ...]  # queues an agent joins when they go available
    bus: Bus
    tracker: Tracker
    links: Mapping[str, AmiClient]  # node name -> its AMI link
    db: async_sessionmaker[AsyncSession]
    service_level: int = 20  # seconds to answer within, for the charts of the day
    recordings_path: Path | None = None  # Asterisk's monitor directory: the calls' mix wavs
    transfer_queues: tuple[str, ...] = ()  # the configured queues: cti-to-queue serves these only
    routing: RoutingControl | None = None  # the router when routing is on, else None
    personal_queues: bool = False  # routing on: "available" also joins the agent's own queue
    logins: LoginGuard | None = None  # the server's sign-in throttle, shared with /api/tokens

    @property
    def ami(self) -> AmiClient:
        return self.links[self.node]

    def interface_of(self, extension: str) -> str:
        return self.settings.agent_interface.format(extension=extension)

    def member_name_of(self, extension: str) -> str:
        return self.settings.member_name.format(extension=extension)


DEPS = web.AppKey("ui_deps", UiDeps)
TEMPLATES = web.AppKey("ui_templates", jinja2.Environment)
