"""The wallboard's live complaint alerts and call transcripts over the websocket: supervisors get
them, agents' desks never do. The board's changes are pushed as they happen once a board
watches; while none does, what only changes the view is not even queued."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.database import make_engine
from cti_server.bus import MemoryBus
from cti_server.events import CallStarted, ComplaintDetected, TranscriptPartial
from cti_server.tracker.tracker import Tracker
from tests.support.live_model import answered_call, waiting_call
from tests.support.ui import add_users, sign_in, ui_app
from tests.support.ui_server import wallboard_of

XSS = '"><svg/onload=alert(1)>'
NODE, LINKEDID = "pbx1", "1700000000.42"
Message = dict[str, Any]


@dataclass
class Board:
    client: TestClient[Any, Any]
    bus: MemoryBus
    tracker: Tracker

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def socket(self, username: str, view: str) -> aiohttp.ClientWebSocketResponse:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._sessions.append(http)
        status, _ = await sign_in(http, self.base, username)
        assert status == 303
        return await http.ws_connect(
            f"{self.base}/ui/ws?view={view}", headers={"Origin": self.base}
        )

    def __post_init__(self) -> None:
        self._sessions: list[aiohttp.ClientSession] = []

    async def close(self) -> None:
        for http in self._sessions:
            await http.close()


@pytest_asyncio.fixture
async def board(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Board]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        await add_users(
            db,
            ("alice", "agent", "8101"),
            ("sam", "supervisor", "7001"),
            ("sue", "supervisor", "7002"),
        )
        app, bus, tracker = ui_app(db)
        answered_call(
            tracker, NODE, LINKEDID, "support", "agent-8101", number="13911112222", name=XSS
        )
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        state = Board(client, bus, tracker)
        try:
            yield state
        finally:
            await state.close()
            await client.close()
    finally:
        await engine.dispose()


async def _until(
    ws: aiohttp.ClientWebSocketResponse, wanted: Callable[[Message], bool], timeout: float = 5
) -> Message:
    """The first message ``wanted`` accepts, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        message: Message = await ws.receive_json(timeout=max(0.01, deadline - time.monotonic()))
        if wanted(message):
            return message


async def _probe(ws: aiohttp.ClientWebSocketResponse) -> list[Message]:
    """Everything the socket got before the answer to an unknown message (its reply is in order)."""
    await ws.send_json({"type": "probe"})
    seen = []
    while (message := await ws.receive_json(timeout=5))["type"] != "error":
        seen.append(message)
    return seen


def _complaint(during_call: bool, said: str) -> ComplaintDetected:
    return ComplaintDetected(
        node=NODE,
        linkedid=LINKEDID,
        probability=0.87,
        threshold=0.5,
        category="service",
        severity="high",
        language="en",
        evidence=[{"kind": "cue", "cue": "repeat", "segment": 0, "text": said}],
        during_call=during_call,
    )


def _complaint_alerts(message: Message) -> list[Message]:
    if message["type"] != "wallboard":
        return []
    return [a for a in message["alerts"] if a["kind"] == "complaint"]


@pytest.mark.asyncio
async def test_a_live_complaint_alerts_supervisors_and_never_reaches_an_agent(board: Board) -> None:
    supervisor = await board.socket("sam", "wallboard")
    agent = await board.socket("alice", "desk")
    await _until(supervisor, lambda m: m["type"] == "wallboard")
    await _until(agent, lambda m: m["type"] == "state")
    board.bus.publish(_complaint(False, "stored after the call, no alert"))
    board.bus.publish(_complaint(True, f"third time {XSS}"))
    pushed = await _until(supervisor, lambda m: bool(_complaint_alerts(m)))
    (alert,) = _complaint_alerts(pushed)
    assert alert["linkedid"] == LINKEDID
    assert alert["caller"] == XSS  # as data: the page puts it in textContent
    assert alert["said"] == f"third time {XSS}"
    assert (alert["severity"], alert["category"], alert["agent"]) == (
        "high",
        "service",
        "alice (8101)",  # the agent as supervisors know them
    )
    assert not any("third time" in str(m) for m in await _probe(agent))


@pytest.mark.asyncio
async def test_a_live_complaint_alert_reaches_an_open_board_while_its_view_push_is_busy(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view's push is throttled and first computes the staffing plan (which takes its time):
    an alert during a call is sent as it comes, not with the view after that."""
    sam = await board.socket("sam", "wallboard")
    await _until(sam, lambda m: m["type"] == "wallboard")
    planning, planned = asyncio.Event(), asyncio.Event()

    async def plan_under_way() -> None:
        planning.set()
        await planned.wait()

    monkeypatch.setattr(wallboard_of(board.client.app), "_plan_ahead", plan_under_way)
    board.bus.publish(
        CallStarted(node=NODE, linkedid="1.1", caller_number="", caller_name="", dialed="")
    )
    async with asyncio.timeout(5):  # the change is being pushed: the push plans first
        await planning.wait()
    board.bus.publish(_complaint(True, f"third time {XSS}"))
    message = await _until(sam, lambda m: m["type"] != "transcript")
    assert message["type"] == "alert"  # while the view's push still waits for the plan
    assert (message["alert"]["kind"], message["alert"]["linkedid"]) == ("complaint", LINKEDID)
    assert message["alert"]["said"] == f"third time {XSS}"
    planned.set()
    view = await _until(sam, lambda m: m["type"] == "wallboard")
    assert [a["linkedid"] for a in _complaint_alerts(view)] == [LINKEDID]  # the view has it too


@pytest.mark.asyncio
async def test_a_call_transcript_goes_to_the_supervisors_following_it_only(board: Board) -> None:
    sam = await board.socket("sam", "wallboard")
    sue = await board.socket("sue", "wallboard")
    agent = await board.socket("alice", "desk")
    board.bus.publish(
        TranscriptPartial(
            node=NODE, linkedid=LINKEDID, speaker="customer", text="hello", final=True
        )
    )
    await _until(agent, lambda m: m["type"] == "state")
    await agent.send_json({"type": "transcript", "node": NODE, "linkedid": LINKEDID})
    refused = await _until(agent, lambda m: m["type"] == "error")
    assert refused == {"type": "error", "message": "forbidden", "for": "transcript"}
    await sam.send_json({"type": "transcript", "node": NODE, "linkedid": "no-such-call"})
    assert (await _until(sam, lambda m: m["type"] == "error"))[
        "message"
    ] == "no such call in progress"

    async def _said_so_far() -> Message:
        await sam.send_json({"type": "transcript", "node": NODE, "linkedid": LINKEDID})
        return await _until(sam, lambda m: m["type"] == "transcript_so_far")

    so_far = await _said_so_far()
    deadline = time.monotonic() + 5
    while not so_far["lines"] and time.monotonic() < deadline:  # the bus hands it over async
        so_far = await _said_so_far()
    assert so_far["lines"] == [{"speaker": "customer", "text": "hello", "start": 0.0}]
    board.bus.publish(TranscriptPartial(node=NODE, linkedid=LINKEDID, speaker="customer", text=XSS))
    partial = await _until(sam, lambda m: m["type"] == "transcript")
    assert (partial["speaker"], partial["text"], partial["final"]) == ("customer", XSS, False)
    assert not any(m["type"].startswith("transcript") for m in await _probe(sue))
    assert not any(m["type"].startswith("transcript") for m in await _probe(agent))
    await sam.send_json({"type": "transcript", "node": NODE, "linkedid": LINKEDID, "follow": False})
    await _until(sam, lambda m: m["type"] == "transcript_closed")
    board.bus.publish(
        TranscriptPartial(node=NODE, linkedid=LINKEDID, speaker="agent", text="sorry", final=True)
    )
    assert not any(m["type"] == "transcript" for m in await _probe(sam))


@pytest.mark.asyncio
async def test_changes_wait_for_no_board_and_reach_a_board_as_soon_as_one_watches(
    board: Board,
) -> None:
    started = [
        CallStarted(node=NODE, linkedid=f"1.{i}", caller_number="", caller_name="", dialed="")
        for i in range(10001)
    ]
    for event in started:  # more than a subscription holds, at once, with no board open
        board.bus.publish(event)
    assert board.bus.status()["dropped"] == 0  # the wallboard queued none of them

    sam = await board.socket("sam", "wallboard")
    first = await _until(sam, lambda m: m["type"] == "wallboard")
    assert not any(c["linkedid"] == "1700000000.43" for c in first["calls"])
    waiting_call(board.tracker, NODE, "1700000000.43", "support")
    # pushed on the change, well before the board's refresh every 5 s
    await _until(
        sam,
        lambda m: (
            m["type"] == "wallboard" and any(c["linkedid"] == "1700000000.43" for c in m["calls"])
        ),
        timeout=2.5,
    )
