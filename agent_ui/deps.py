"""What the web application is given by the composition root, and where it keeps its parts.

Everything of the server comes as the event vocabulary, the bus, or the protocols and plain
values of :mod:`cti_server.control`: the UI never reaches telephony, the tracker or the router.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.phone_accounts import BrowserPhones
from crm_core.login_throttle import LoginGuard
from cti_server.bus import Bus
from cti_server.control import (
    AgentControl,
    LiveView,
    RecordingNames,
    Redaction,
    SupervisorRouting,
    UiOptions,
)
from cti_server.control.staffing import StaffingPlans


@dataclass(frozen=True)
class UiDeps:
    """Everything ``agent_ui`` uses of the server: injected, never looked up."""

    settings: UiOptions
    region: str  # for phone numbers typed without a country code
    node: str  # the Asterisk node the users' phones are on
    bus: Bus
    live: LiveView  # the live model, read
    control: AgentControl  # what desks and supervisors do to phones, calls and queues
    db: async_sessionmaker[AsyncSession]
    redaction: Redaction  # a live transcript shown at a hand-over
    recording_names: RecordingNames  # a call's recording files, the mix first
    complaint_categories: Sequence[str] = ()  # the detector's categories, in its order
    service_level: int = 20  # seconds to answer within, for the charts of the day
    recordings_path: Path | None = None  # Asterisk's monitor directory: the calls' mix wavs
    routing: SupervisorRouting | None = None  # the router when routing is on, else None
    logins: LoginGuard | None = None  # the server's sign-in throttle, shared with /api/tokens
    phones: BrowserPhones | None = None  # the agents whose phone is the browser, and its server
    staffing: StaffingPlans | None = None  # the forecast and staffing plan (None: not offered)

    @property
    def zone(self) -> ZoneInfo:
        """The contact center's time zone: where its days and weeks begin."""
        return ZoneInfo(self.settings.time_zone)


DEPS = web.AppKey("ui_deps", UiDeps)
TEMPLATES = web.AppKey("ui_templates", jinja2.Environment)
