"""Call controls over the websocket without Asterisk: an agent's transfer to a queue, and a
supervisor's priority change and move of a waiting call (the router's controls, in-process)."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import async_sessionmaker

from agent_ui.wallboard import ROUTING_OFF
from crm_core.database import make_engine
from cti_server.routing.router import UnknownAgent, UnknownCall
from cti_server.telephony import agent_actions
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.tracker import Tracker
from tests.support.fakes import FakeAmiLink
from tests.support.live_model import agent_answers, waiting_call
from tests.support.ui import add_users, sign_in, ui_app
from tests.support.ui_server import control_of
from tests.support.waiting import poll_until

NODE, WAITING = "pbx1", "1700000000.7"


@dataclass
class FakeRouter:
    """Records what the wallboard asks; refuses calls and agents it does not know."""

    asked: list[tuple[object, ...]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {
            "waiting": [
                {
                    "node": NODE,
                    "call": WAITING,
                    "queue": "support",
                    "priority": {"effective": 75.5, "adjust": 30.0},
                    "moved_to": "8102",
                    "ringing": None,
                }
            ]
        }

    def _known(self, node: str, linkedid: str) -> None:
        if (node, linkedid) != (NODE, WAITING):
            raise UnknownCall(f"no call {linkedid} waits on {node}")

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]:
        self.asked.append(("move", node, linkedid, agent, by))
        self._known(node, linkedid)
        if agent != "8102":
            raise UnknownAgent(f"agent {agent} is not signed in for routing on {node}")
        return {}

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]:
        self.asked.append(("priority", node, linkedid, adjust))
        self._known(node, linkedid)
        return {}


@dataclass
class Ui:
    client: TestClient[Any, Any]
    app: web.Application
    tracker: Tracker
    router: FakeRouter | None

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def socket(
        self, http: aiohttp.ClientSession, view: str
    ) -> aiohttp.ClientWebSocketResponse:
        return await http.ws_connect(
            f"{self.base}/ui/ws?view={view}", headers={"Origin": self.base}
        )


async def _ui(template: Path, tmp_path: Path, router: FakeRouter | None) -> AsyncIterator[Ui]:
    path = tmp_path / "crm.db"
    shutil.copyfile(template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        await add_users(db, ("alice", "agent", "8101"), ("sam", "supervisor", "7001"))
        app, _, tracker = ui_app(db, routing=router)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            yield Ui(client, app, tracker, router)
        finally:
            await client.close()
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def routed(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Ui]:
    async for ui in _ui(sqlite_crm_template, tmp_path, FakeRouter()):
        yield ui


@pytest_asyncio.fixture
async def plain(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Ui]:
    async for ui in _ui(sqlite_crm_template, tmp_path, None):
        yield ui


@pytest_asyncio.fixture
async def browsers() -> AsyncIterator[list[aiohttp.ClientSession]]:
    opened: list[aiohttp.ClientSession] = []
    yield opened
    for http in opened:
        await http.close()


async def _signed_in(ui: Ui, browsers: list[aiohttp.ClientSession], user: str) -> Any:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    browsers.append(http)
    status, _ = await sign_in(http, ui.base, user)
    assert status == 303
    return http


async def _reply(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any] | str) -> Any:
    """Send ``message`` and return the answer to it (info or error), skipping pushed views."""
    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
    while True:
        answer = await ws.receive_json(timeout=5)
        if answer["type"] in ("info", "error"):
            return answer


# -- transfer to a queue (agent desktop) --------------------------------------------------------


@pytest.mark.asyncio
async def test_transfer_to_a_queue_is_validated_before_anything_is_sent(
    plain: Ui, browsers: list[aiohttp.ClientSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, str, str]] = []

    async def blind_transfer(_ami: AmiClient, channel: str, exten: str, context: str) -> None:
        sent.append((channel, exten, context))

    monkeypatch.setattr(agent_actions, "blind_transfer", blind_transfer)
    alice = await _signed_in(plain, browsers, "alice")
    ws = await plain.socket(alice, "desk")
    choose = "choose a queue to transfer to: support, sales"
    for queue in ("nowhere", "sales\r\nAction: Hangup", 42, None, ["sales"]):
        refused = await _reply(ws, {"type": "transfer_queue", "queue": queue})
        assert refused == {"type": "error", "message": choose, "for": "transfer_queue"}
    idle = await _reply(ws, {"type": "transfer_queue", "queue": "sales"})
    assert idle["message"] == "no call in progress"
    assert sent == []

    control = control_of(plain.app)
    monkeypatch.setattr(
        control, "_my_channel", lambda extension, _call: f"PJSIP/{extension}-00000001"
    )
    done = await _reply(ws, {"type": "transfer_queue", "queue": "sales"})
    assert done == {"type": "info", "message": "transferred to the queue sales"}
    assert sent == [("PJSIP/8101-00000001", "sales", "cti-to-queue")]
    await ws.close()


@pytest.mark.asyncio
async def test_transfer_to_a_queue_is_a_desk_message_and_the_desktop_offers_the_queues(
    plain: Ui, browsers: list[aiohttp.ClientSession]
) -> None:
    sam = await _signed_in(plain, browsers, "sam")
    board = await plain.socket(sam, "wallboard")
    refused = await _reply(board, {"type": "transfer_queue", "queue": "sales"})
    assert refused == {"type": "error", "message": "forbidden", "for": "transfer_queue"}
    await board.close()
    alice = await _signed_in(plain, browsers, "alice")
    async with alice.get(plain.base + "/ui/desktop") as page:
        html = await page.text()
    assert '<option value="support">support</option>' in html
    assert '<option value="sales">sales</option>' in html


@pytest.mark.asyncio
async def test_transfer_to_a_queue_refuses_an_unknown_queue_in_the_action_itself() -> None:
    with pytest.raises(agent_actions.AgentActionError, match="no queue 'x' to transfer to"):
        await agent_actions.transfer_to_queue(
            None,  # type: ignore[arg-type]  # refused before the link is touched
            "PJSIP/8101-00000001",
            "x",
            ("support",),
        )


# -- priority and move (supervisor wallboard) ---------------------------------------------------


@pytest.mark.asyncio
async def test_an_agent_can_neither_open_the_wallboard_nor_send_its_controls(
    routed: Ui, browsers: list[aiohttp.ClientSession]
) -> None:
    alice = await _signed_in(routed, browsers, "alice")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await routed.socket(alice, "wallboard")
    assert refused.value.status == 403
    async with alice.get(routed.base + "/ui/wallboard") as page:
        assert page.status == 403
    ws = await routed.socket(alice, "desk")
    for kind in ("call_priority", "call_move"):
        message = {"type": kind, "node": NODE, "linkedid": WAITING, "adjust": 60, "agent": "8101"}
        assert await _reply(ws, message) == {"type": "error", "message": "forbidden", "for": kind}
    assert routed.router is not None
    assert routed.router.asked == []
    await ws.close()


BAD_MESSAGES: list[tuple[dict[str, Any], str]] = [
    ({"type": "call_priority", "node": NODE, "linkedid": WAITING, "adjust": "60"}, "adjust: "),
    ({"type": "call_priority", "node": NODE, "linkedid": WAITING, "adjust": True}, "adjust: "),
    ({"type": "call_priority", "node": NODE, "linkedid": WAITING, "adjust": 3601}, "adjust: "),
    ({"type": "call_priority", "node": NODE, "linkedid": WAITING}, "adjust: Field required"),
    ({"type": "call_priority", "node": NODE, "adjust": 1}, "linkedid: Field required"),
    ({"type": "call_priority", "node": NODE, "linkedid": "1;x", "adjust": 1}, "linkedid: "),
    ({"type": "call_priority", "node": "", "linkedid": WAITING, "adjust": 1}, "node: "),
    (
        {"type": "call_priority", "node": NODE, "linkedid": WAITING, "adjust": 1, "x": 1},
        "x: Extra inputs are not permitted",
    ),
    ({"type": "call_move", "node": NODE, "linkedid": WAITING, "agent": "x1"}, "agent: "),
    ({"type": "call_move", "node": NODE, "linkedid": WAITING, "agent": 8102}, "agent: "),
    ({"type": "call_move", "node": NODE, "linkedid": WAITING}, "agent: Field required"),
]


@pytest.mark.asyncio
async def test_supervisor_controls_refuse_bad_payloads_with_the_field_named(
    routed: Ui, browsers: list[aiohttp.ClientSession]
) -> None:
    sam = await _signed_in(routed, browsers, "sam")
    ws = await routed.socket(sam, "wallboard")
    for message, error in BAD_MESSAGES:
        answer = await _reply(ws, message)
        assert answer["type"] == "error", message
        assert answer["message"].startswith(error), (message, answer)
    nan = '{"type": "call_priority", "node": "pbx1", "linkedid": "1700000000.7", "adjust": NaN}'
    assert (await _reply(ws, nan))["message"].startswith("adjust: ")
    assert routed.router is not None
    assert routed.router.asked == []
    await ws.close()


@pytest.mark.asyncio
async def test_supervisor_controls_call_the_router_and_pass_on_its_refusals(
    routed: Ui, browsers: list[aiohttp.ClientSession]
) -> None:
    router = routed.router
    assert router is not None
    sam = await _signed_in(routed, browsers, "sam")
    ws = await routed.socket(sam, "wallboard")
    call = {"node": NODE, "linkedid": WAITING}
    raised = await _reply(ws, {"type": "call_priority", **call, "adjust": 60})
    assert raised == {"type": "info", "message": f"call {WAITING}: priority +60 s"}
    back = await _reply(ws, {"type": "call_priority", **call, "adjust": -12.5})
    assert back == {"type": "info", "message": f"call {WAITING}: priority -12.5 s"}
    moved = await _reply(ws, {"type": "call_move", **call, "agent": "8102"})
    assert moved == {"type": "info", "message": f"call {WAITING}: for agent 8102"}
    busy = await _reply(ws, {"type": "call_move", **call, "agent": "8109"})
    assert busy["message"] == f"agent 8109 is not signed in for routing on {NODE}"
    gone = await _reply(ws, {"type": "call_priority", "node": NODE, "linkedid": "1.1", "adjust": 5})
    assert gone == {
        "type": "error",
        "message": f"no call 1.1 waits on {NODE}",
        "for": "call_priority",
    }
    assert router.asked == [
        ("priority", NODE, WAITING, 60.0),
        ("priority", NODE, WAITING, -12.5),
        ("move", NODE, WAITING, "8102", "sam"),  # who moved it, for the decision's record
        ("move", NODE, WAITING, "8109", "sam"),
        ("priority", NODE, "1.1", 5.0),
    ]
    await ws.close()


@pytest.mark.asyncio
async def test_the_wallboard_shows_the_routers_priority_of_waiting_calls(
    routed: Ui, browsers: list[aiohttp.ClientSession]
) -> None:
    waiting_call(routed.tracker, NODE, WAITING, "support")
    sam = await _signed_in(routed, browsers, "sam")
    async with sam.get(routed.base + "/ui/wallboard") as page:
        assert "<th>Routing</th>" in await page.text()
    ws = await routed.socket(sam, "wallboard")
    view = await ws.receive_json(timeout=5)
    assert view["routing"] is True
    (call,) = view["calls"]
    assert call["routing"] == {
        "priority": 75.5,
        "adjust": 30.0,
        "moved_to": "8102",
        "ringing": None,
    }
    await ws.close()


@pytest.mark.asyncio
async def test_with_routing_off_a_call_cannot_be_moved_to_one_agent(
    plain: Ui, browsers: list[aiohttp.ClientSession]
) -> None:
    sam = await _signed_in(plain, browsers, "sam")
    async with sam.get(plain.base + "/ui/wallboard") as page:
        html = await page.text()
    assert "<th>Routing</th>" not in html
    assert "<th>Priority</th>" in html  # app_queue's own priority instead
    ws = await plain.socket(sam, "wallboard")
    view = await ws.receive_json(timeout=5)
    assert view["routing"] is False
    move = {"type": "call_move", "node": NODE, "linkedid": WAITING, "agent": "8102"}
    assert await _reply(ws, move) == {"type": "error", "message": ROUTING_OFF, "for": "call_move"}
    await ws.close()


def _waiting_call(ui: Ui) -> None:
    waiting_call(ui.tracker, NODE, WAITING, "support", channel="PJSIP/trunk-00000007")


@pytest.mark.asyncio
async def test_with_plain_queues_a_waiting_calls_priority_is_set_in_app_queue(
    plain: Ui, browsers: list[aiohttp.ClientSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    link = FakeAmiLink(NODE)
    monkeypatch.setattr(control_of(plain.app).links[NODE], "send_action", link.send_action)
    sam = await _signed_in(plain, browsers, "sam")
    ws = await plain.socket(sam, "wallboard")
    call = {"type": "call_priority", "node": NODE, "linkedid": WAITING}
    gone = await _reply(ws, {**call, "priority": 5})
    assert gone["message"] == f"no call {WAITING} waits in a queue on {NODE}"
    _waiting_call(plain)
    for bad in (-1, 1001, "5", 2.5, True):
        refused = await _reply(ws, {**call, "priority": bad})
        assert refused["message"].startswith("priority: "), bad
    seconds = await _reply(ws, {**call, "adjust": 60})  # the router's control, not app_queue's
    assert seconds["message"].startswith(("priority: ", "adjust: "))
    assert link.sent == []
    done = await _reply(ws, {**call, "priority": 10})
    assert done == {"type": "info", "message": f"call {WAITING}: priority 10 in support"}
    assert link.sent == [
        (
            "QueueChangePriorityCaller",
            {
                "Queue": "support",
                "Caller": "PJSIP/trunk-00000007",
                "Priority": "10",
                "Immediate": "yes",
            },
        )
    ]
    agent_answers(
        plain.tracker, NODE, WAITING, "support", "agent-8101", "PJSIP/8101", "PJSIP/8101-8"
    )
    answered = await _reply(ws, {**call, "priority": 10})
    assert answered["message"] == f"no call {WAITING} waits in a queue on {NODE}"
    await ws.close()


@pytest.mark.asyncio
async def test_the_queue_priority_action_checks_its_arguments_before_sending() -> None:
    link = FakeAmiLink(NODE)
    ami: Any = link
    for queue, caller, priority in (
        ("support\r\nAction: Hangup", "PJSIP/trunk-1", 1),
        ("support", "/PJSIP/.*/", 1),
        ("support", "PJSIP/trunk-1", -1),
        ("support", "PJSIP/trunk-1", True),
    ):
        with pytest.raises(agent_actions.AgentActionError):
            await agent_actions.change_caller_priority(ami, queue, caller, priority)
    assert link.sent == []


# -- going available ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("routing", [False, True], ids=["plain", "routed"])
async def test_going_available_joins_the_queues_of_the_routing_mode(
    sqlite_crm_template: Path,
    tmp_path: Path,
    browsers: list[aiohttp.ClientSession],
    monkeypatch: pytest.MonkeyPatch,
    routing: bool,
) -> None:
    joined: list[str] = []

    async def queue_login(ami: Any, queue: str, interface: str, name: str, **_: Any) -> None:
        joined.append(queue)

    async def unpause(ami: Any, interface: str) -> None:
        return None

    monkeypatch.setattr(agent_actions, "queue_login", queue_login)
    monkeypatch.setattr(agent_actions, "unpause", unpause)
    async for ui in _ui(sqlite_crm_template, tmp_path, FakeRouter() if routing else None):
        http = await _signed_in(ui, browsers, "alice")
        ws = await ui.socket(http, "desk")
        await ws.send_json({"type": "state", "state": "available"})

        async def _joined() -> list[str] | None:
            return joined or None

        await poll_until(_joined, 5, what="queues joined")
        await ws.close()
    # routed: the agent's own queue and the fallback, never the waiting queue app_queue would ring
    assert joined == (["agent-8101", "fallback"] if routing else ["support"])
