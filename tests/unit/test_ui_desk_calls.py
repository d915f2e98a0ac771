"""The desk follows the call on the server, without Asterisk: the wrap-up's deadline is kept here
(a closed tab does not leave the agent paused), a transfer ends the transferring agent's part and
pops on the target's desk, and the router's decision joins the pop whenever it comes."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui import desktop
from crm_core.database import make_engine
from crm_core.interactions import find_interaction
from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.events import (
    AgentRinging,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallRouted,
    DomainEvent,
)
from cti_server.telephony import agent_actions
from cti_server.tracker.model import Call, CallState, Leg
from cti_server.tracker.tracker import Tracker
from tests.support.ui import add_users, sign_in, ui_app
from tests.support.waiting import poll_until

NODE = "pbx1"
CALLER = "13911112222"
ALICE, BOB = "agent-8101", "agent-8102"
PUSHED = ("hello", "state", "info")  # what a desk is sent besides the call's own messages


@dataclass
class FakeAmi:
    """What the desks ask of Asterisk, in order."""

    asked: list[tuple[str, ...]] = field(default_factory=list)

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


@dataclass
class Ui:
    client: TestClient[Any, Any]
    app: web.Application
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


@pytest_asyncio.fixture
async def ui(
    sqlite_crm_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Ui]:
    """alice and bob at their desks, a wrap-up of one second, Asterisk faked."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    ami = FakeAmi()
    ami.install(monkeypatch)
    monkeypatch.setattr(desktop, "WRAPUP_GRACE", 0.0)
    try:
        ids = await add_users(db, ("alice", "agent", "8101"), ("bob", "agent", "8102"))
        settings = UiSettings().model_copy(update={"wrapup_seconds": 1})
        app, bus, tracker = ui_app(db, settings=settings)
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


def _arrived(linkedid: str) -> CallArrived:
    return CallArrived(
        node=NODE,
        linkedid=linkedid,
        uniqueid=linkedid,
        channel="PJSIP/trunk-00000001",
        caller_number=CALLER,
        caller_name="Wang",
        dialed="100",
    )


def _ringing(linkedid: str, agent: str) -> AgentRinging:
    return AgentRinging(
        node=NODE,
        linkedid=linkedid,
        queue="support",
        agent=agent,
        caller_number=CALLER,
        caller_name="Wang",
    )


def _answered(linkedid: str, agent: str) -> CallAnswered:
    return CallAnswered(
        node=NODE, linkedid=linkedid, queue="support", agent=agent, waited_seconds=3
    )


def _ended(linkedid: str, agent: str) -> CallEnded:
    now = datetime.now(UTC)
    return CallEnded(
        node=NODE,
        linkedid=linkedid,
        outcome="answered",
        hung_up_by="caller",
        caller_number=CALLER,
        caller_name="Wang",
        dialed="100",
        queue="support",
        agent=agent,
        arrived_at=now,
        queued_at=now,
        offered_at=now,
        answered_at=now,
    )


def _state(agent: str, state: str, linkedid: str = "") -> AgentStateChanged:
    return AgentStateChanged(node=NODE, agent=agent, state=state, reason="", linkedid=linkedid)


async def _connect(ui: Ui, ws: aiohttp.ClientWebSocketResponse, linkedid: str) -> None:
    """A call rings alice, pops, and she answers."""
    ui.publish(_arrived(linkedid), _ringing(linkedid, ALICE))
    assert (await next_of(ws, "pop"))["call"]["linkedid"] == linkedid
    ui.publish(_answered(linkedid, ALICE))
    await next_of(ws, "answered")


async def _stored(ui: Ui, linkedid: str) -> Any:
    async def _disposed() -> Any:
        async with ui.db() as session:
            row = await find_interaction(session, NODE, linkedid)
        return row if row is not None and row.disposition else None

    return await poll_until(_disposed, 10, what=f"the wrap-up of {linkedid} in the CRM")


# -- the wrap-up's deadline -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_wrap_up_left_open_is_stored_and_the_agent_made_available_by_the_server(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    linkedid = "1700000000.1"
    await _connect(ui, alice, linkedid)
    ui.publish(_ended(linkedid, ALICE))
    wrapup = await next_of(alice, "wrapup")
    assert wrapup["linkedid"] == linkedid
    assert 0 <= wrapup["left"] <= 1  # the server's deadline, which the countdown follows
    await alice.close()  # the tab is closed: nobody will send the form

    row = await _stored(ui, linkedid)
    assert row.disposition == "no_action"
    assert row.agent_id == ui.ids["alice"]
    await poll_until(lambda: _asked(ui, ("unpause", "PJSIP/8101")), 10, what="alice made available")
    assert ("pause", "PJSIP/8101", "wrap-up") in ui.ami.asked


async def _asked(ui: Ui, action: tuple[str, ...]) -> bool:
    return action in ui.ami.asked


@pytest.mark.asyncio
async def test_an_open_desk_is_told_the_wrap_up_timed_out_and_its_late_form_is_refused(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    linkedid = "1700000000.2"
    await _connect(ui, alice, linkedid)
    ui.publish(_ended(linkedid, ALICE))
    await next_of(alice, "wrapup")
    wrapped = await next_of(alice, "wrapped")
    assert wrapped == {"type": "wrapped", "linkedid": linkedid, "timed_out": True}
    await alice.send_json({"type": "wrapup", "linkedid": linkedid, "disposition": "resolved"})
    refused = await next_of(alice, "error")
    assert refused["message"] == "no wrap-up is pending for this call"
    assert (await _stored(ui, linkedid)).disposition == "no_action"


# -- transfers --------------------------------------------------------------------------------


def _live_call(ui: Ui, linkedid: str, *channels: str) -> None:
    """The tracker's view of a call answered by alice: the caller's leg and hers."""
    now = datetime.now(UTC)
    call = Call(NODE, linkedid, linkedid, CALLER, "Wang", "100", now, CallState.ANSWERED)
    for n, channel in enumerate(channels):
        call.legs[f"{linkedid}{n}"] = Leg(f"{linkedid}{n}", channel, "Up", now)
    ui.tracker.calls[(NODE, linkedid)] = call


@pytest.mark.asyncio
async def test_a_transfer_ends_the_transferring_agents_part_and_pops_on_the_targets_desk(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    bob = await ui.desk("bob")
    linkedid = "1700000000.3"
    _live_call(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-00000002")
    await _connect(ui, alice, linkedid)

    await alice.send_json({"type": "transfer", "to": "8102"})
    assert await next_of(alice, "info") == {"type": "info", "message": "transferred to 8102"}
    assert ("transfer", "PJSIP/8101-00000002", "8102", "cti-agents") in ui.ami.asked
    pop = await next_of(bob, "pop")  # bob's phone rings with the caller, said to be from alice
    assert pop["call"]["linkedid"] == linkedid
    assert pop["call"]["state"] == "ringing"
    assert pop["call"]["transferred_by"] == "alice"
    assert pop["call"]["caller_number"] == CALLER

    # app_queue completes alice's part (her leg left): her call is over for her, wrap-up
    ui.publish(_state(ALICE, "available"))
    wrapup = await next_of(alice, "wrapup")
    assert wrapup["linkedid"] == linkedid
    await poll_until(
        lambda: _asked(ui, ("pause", "PJSIP/8101", "wrap-up")), 10, what="alice in wrap-up"
    )

    ui.publish(_state(BOB, "on_call"))  # bob answers
    assert await next_of(bob, "answered") == {
        "type": "answered",
        "node": NODE,
        "linkedid": linkedid,
    }
    ui.publish(_ended(linkedid, ALICE))
    assert (await next_of(bob, "wrapup"))["linkedid"] == linkedid


@pytest.mark.asyncio
async def test_a_desks_call_goes_on_while_its_phone_is_still_in_it(ui: Ui) -> None:
    """A device state saying "free" while the agent's leg is still live (it carries the call's
    linkedid; app_queue's completion does not) does not end the agent's call."""
    alice = await ui.desk("alice")
    linkedid = "1700000000.4"
    _live_call(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-00000002")
    await _connect(ui, alice, linkedid)
    ui.publish(_state(ALICE, "available", linkedid))
    assert (await next_of(alice, "state"))["state"] == "available"
    await alice.send_json({"type": "hold"})  # still her call: the controls still find her leg
    assert await next_of(alice, "held") == {"type": "held", "held": True}
    assert ("hold", "PJSIP/8101-00000002") in ui.ami.asked


# -- the router's decision --------------------------------------------------------------------


def _routed(linkedid: str, agent: str) -> CallRouted:
    decision = {"rule": "skills", "why": "best billing skill free longest", "queue": "support"}
    return CallRouted(node=NODE, linkedid=linkedid, agent=agent, rule="skills", decision=decision)


@pytest.mark.asyncio
async def test_the_routers_decision_reaches_the_pop_whether_it_comes_before_or_after_it(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    late, early = "1700000000.5", "1700000000.6"
    ui.publish(_arrived(late), _ringing(late, ALICE))
    pop = await next_of(alice, "pop")
    assert "decision" not in pop["routing"]
    ui.publish(_routed(late, "8101"))  # written to the CRM later by the recorder
    update = await next_of(alice, "pop_routing")
    assert update["linkedid"] == late
    assert update["routing"]["decision"]["why"] == "best billing skill free longest"

    ui.publish(_ended(late, ""), _arrived(early), _routed(early, "8101"), _ringing(early, ALICE))
    await next_of(alice, "pop_cleared")
    pop = await next_of(alice, "pop")
    assert pop["call"]["linkedid"] == early
    assert pop["routing"]["decision"]["rule"] == "skills"
