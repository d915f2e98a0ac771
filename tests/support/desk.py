"""The desk harness: alice and bob at their desks, Asterisk's agent actions faked, the call
events a desk follows."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from panoramisk.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.phone_accounts import BrowserPhones
from crm_core.database import make_engine
from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.events import (
    AgentRinging,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    DomainEvent,
)
from cti_server.telephony import agent_actions, agent_control
from cti_server.tracker.tracker import Tracker
from tests.support import domain_events as make
from tests.support.ui import add_users, sign_in
from tests.support.ui_server import control_of, mounted, ui_deps

NODE = "pbx1"
CALLER = "13911112222"
ALICE, BOB = "agent-8101", "agent-8102"
PUSHED = ("hello", "state", "info")  # what a desk is sent besides the call's own messages


@dataclass
class FakeAmi:
    """What the desks ask of Asterisk, in order: the actions faked here by name, and for the
    others (checked by the real functions) the AMI actions sent, which Asterisk accepts."""

    asked: list[tuple[str, ...]] = field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def send_action(self, name: str, fields: Any = None, **_: Any) -> Message:
        self.sent.append((name, dict(fields or {})))
        return Message({"Response": "Success"})

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def pause(_ami: object, interface: str, reason: str, queue: object = None) -> None:
            self.asked.append(("pause", interface, reason))

        async def unpause(_ami: object, interface: str, queue: object = None) -> None:
            self.asked.append(("unpause", interface))

        async def queue_login(_ami: object, queue: str, interface: str, *_: Any, **__: Any) -> None:
            self.asked.append(("join", queue, interface))

        async def blind_transfer(_ami: object, channel: str, exten: str, context: str) -> None:
            self.asked.append(("transfer", channel, exten, context))

        async def hold(_ami: object, channel: str, *_: Any, **__: Any) -> None:
            self.asked.append(("hold", channel))

        async def unhold(_ami: object, channel: str, **_: Any) -> None:
            self.asked.append(("unhold", channel))

        for name, fake in (
            ("hold", hold),
            ("unhold", unhold),
            ("pause", pause),
            ("unpause", unpause),
            ("queue_login", queue_login),
            ("blind_transfer", blind_transfer),
        ):
            monkeypatch.setattr(agent_actions, name, fake)

    def link(self, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """The AMI links of ``app``'s agent control answer here."""
        for link in control_of(app).links.values():
            monkeypatch.setattr(link, "send_action", self.send_action)


@dataclass
class Ui:
    client: TestClient[Any, Any]
    app: Any  # the aiohttp application
    bus: MemoryBus
    tracker: Tracker
    db: async_sessionmaker[AsyncSession]
    ids: dict[str, int]
    ami: FakeAmi
    browsers: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def desk(self, username: str) -> aiohttp.ClientWebSocketResponse:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.browsers.append(http)
        status, _ = await sign_in(http, self.base, username)
        assert status == 303
        ws = await http.ws_connect(f"{self.base}/ui/ws?view=desk", headers={"Origin": self.base})
        assert (await next_of(ws, "state"))["state"] == "logged_out"
        return ws

    @property
    def http(self) -> aiohttp.ClientSession:
        return self.browsers[-1]  # the last one signed in

    def publish(self, *events: DomainEvent) -> None:
        for event in events:
            self.bus.publish(event)


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``; anything but the usual pushes on the way fails."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=10)
        if message["type"] == kind:
            return message
        assert message["type"] in PUSHED, message


@pytest.fixture
def desk_phones() -> BrowserPhones | None:
    """The agents whose phone is the browser: none, unless a test module says otherwise."""
    return None


@pytest_asyncio.fixture
async def ui(
    sqlite_crm_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    desk_phones: BrowserPhones | None,
) -> AsyncIterator[Ui]:
    """alice and bob at their desks, a wrap-up of one second, Asterisk faked."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    ami = FakeAmi()
    ami.install(monkeypatch)
    monkeypatch.setattr(agent_control, "WRAPUP_GRACE", 0.0)
    try:
        ids = await add_users(db, ("alice", "agent", "8101"), ("bob", "agent", "8102"))
        settings = UiSettings().model_copy(update={"wrapup_seconds": 1})
        bus = MemoryBus()
        tracker = Tracker(bus.publish)
        deps = replace(ui_deps(db, bus, tracker, settings=settings), phones=desk_phones)
        app = mounted(deps)
        ami.link(app, monkeypatch)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        ui = Ui(client, app, bus, tracker, db, ids, ami)
        try:
            yield ui
        finally:
            for http in ui.browsers:
                await http.close()
            await client.close()
    finally:
        await engine.dispose()


def arrived(linkedid: str) -> CallArrived:
    return replace(make.arrived(linkedid, CALLER), at=datetime.now(UTC))


def ringing(linkedid: str, agent: str) -> AgentRinging:
    return replace(make.ringing(linkedid, agent), caller_number=CALLER)


def answered(linkedid: str, agent: str) -> CallAnswered:
    return make.answered(linkedid, agent)


def ended(linkedid: str, agent: str) -> CallEnded:
    """Answered, over now."""
    return make.ended(linkedid, agent, caller=CALLER, arrived_at=datetime.now(UTC))


def state(agent: str, state: str, linkedid: str = "") -> AgentStateChanged:
    return AgentStateChanged(node=NODE, agent=agent, state=state, reason="", linkedid=linkedid)
