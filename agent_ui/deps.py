"""What the web application is given by the composition root, and where it keeps its parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cti_server.bus import Bus
from cti_server.config import UiSettings
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.tracker import Tracker


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

    @property
    def ami(self) -> AmiClient:
        return self.links[self.node]

    def interface_of(self, extension: str) -> str:
        return self.settings.agent_interface.format(extension=extension)

    def member_name_of(self, extension: str) -> str:
        return self.settings.member_name.format(extension=extension)


DEPS = web.AppKey("ui_deps", UiDeps)
TEMPLATES = web.AppKey("ui_templates", jinja2.Environment)
