"""Screen-pop latency: from Asterisk's ring event to the pop in the agent's websocket client.

    .venv/bin/python bench/screenpop.py [--agents N] [--rounds R]

One process: the ``agent_ui`` application (as ``cti serve`` mounts it) on a real TCP port, a
fresh SQLite CRM in a temporary directory with N customers (each with a phone, a tier and a few
past interactions) and N agent users, and N websocket clients, one per agent, each signed in
with its own session (the desk view, Origin checked as a browser's). The tracker is fed typed
AMI messages exactly as the AMI link feeds it (``translate`` then ``Tracker.apply``).

Each round places N calls at once: ``Newchannel`` and ``QueueCallerJoin`` enter the tracker and
``CallArrived`` (the IVR's entry) goes on the bus, so the CRM look-ups run while the callers are
"in the IVR"; once they are done, all N ``AgentCalled`` events arrive back to back, one per
agent. The clock starts as each AMI message is handed to ``translate`` and stops when its
client has parsed the pop (``time.perf_counter``, shared: clients and server are in the same
process and event loop, so client work under load is counted on both sides).

Beside it, in the same run, the floor: a bare aiohttp websocket endpoint pushes a timestamped
message to N connected clients at once (one-way, the same measurement), and each client's echo
round trip. Prints p50 / p99 of each beside the target (pop p99 < 50 ms); never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from agent_ui.app import POPS, create_ui  # noqa: E402
from agent_ui.auth import SESSION_COOKIE, STORE  # noqa: E402
from agent_ui.deps import UiDeps  # noqa: E402
from agent_ui.sessions import SessionStore  # noqa: E402
from crm_core.customers import create_customer  # noqa: E402
from crm_core.database import make_engine  # noqa: E402
from crm_core.interactions import record_interaction  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402
from crm_core.models import User  # noqa: E402
from crm_core.schemas import CustomerIn, InteractionIn  # noqa: E402
from cti_server.bus import MemoryBus  # noqa: E402
from cti_server.complaints.signals import CATEGORIES  # noqa: E402
from cti_server.config import AmiSettings, UiSettings  # noqa: E402
from cti_server.events import CallArrived  # noqa: E402
from cti_server.ivr.identification import CallerIdentification  # noqa: E402
from cti_server.speech.desk_redaction import SequenceRedaction  # noqa: E402
from cti_server.speech.transcription import recording_names  # noqa: E402
from cti_server.telephony.agent_control import AmiAgentControl  # noqa: E402
from cti_server.telephony.ami_client import AmiClient  # noqa: E402
from cti_server.telephony.ami_events import translate  # noqa: E402
from cti_server.tracker.tracker import Tracker  # noqa: E402

NODE = "pbx1"
TIERS = ("platinum", "gold", "silver", "standard")
TARGET_P99_MS = 50.0


def phone(i: int) -> str:
    return f"+86139{i:08d}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def seed(db: async_sessionmaker[AsyncSession], agents: int) -> list[User]:
    """N customers with a phone, a tier and three past calls; N agents with extensions."""
    users = []
    async with db() as session, session.begin():
        for i in range(agents):
            customer = await create_customer(
                session,
                CustomerIn(
                    name=f"Customer {i}",
                    phones=[{"number": phone(i)}],
                    tier_override=TIERS[i % len(TIERS)],
                    account_number=f"A{i:09d}",
                ),
                "CN",
            )
            for k in range(3):
                await record_interaction(
                    session,
                    InteractionIn(
                        node=NODE,
                        linkedid=f"past-{i}-{k}",
                        customer_id=customer.id,
                        arrived_at=datetime.now(UTC) - timedelta(days=k + 1),
                        disposition="resolved",
                    ),
                )
            user = User(
                username=f"agent{i:03d}",
                display_name=f"Agent {i}",
                role="agent",
                password_hash="not used: sessions are made directly",  # noqa: S106
                extension=str(5000 + i),
                languages=[],
                skills=[],
            )
            session.add(user)
            users.append(user)
        await session.flush()
    return users


class Clients:
    """N websocket clients; each notes when every message of a kind arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.http: list[aiohttp.ClientSession] = []
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []
        self.expected = 0
        self.all_in = asyncio.Event()

    async def open(
        self, url: str, origin: str, cookies: list[dict[str, str]], on: Callable[..., None]
    ) -> None:
        for jar in cookies:
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), cookies=jar)
            ws = await http.ws_connect(url, headers={"Origin": origin})
            self.http.append(http)
            self.sockets.append(ws)
            self.readers.append(asyncio.create_task(self._read(ws, on)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, on: Callable[..., None]) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            on(self, json.loads(message.data), time.perf_counter())

    def note(self, key: str, when: float) -> None:
        self.arrived[key] = when
        if len(self.arrived) >= self.expected:
            self.all_in.set()

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        for ws in self.sockets:
            await ws.close()
        for http in self.http:
            await http.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.readers, return_exceptions=True)


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


async def until(event: asyncio.Event, what: str, timeout: float = 30.0) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise SystemExit(f"{what} did not happen within {timeout:g} s") from None


async def signed_in(
    store: SessionStore, db: async_sessionmaker[AsyncSession], users: list[User]
) -> list[dict[str, str]]:
    """A session cookie per user, made directly (no sign-in form, no password hashing)."""
    async with db() as session:
        return [{SESSION_COOKIE: (await store.create(session, user)).id} for user in users]


def _ui_deps(
    db: async_sessionmaker[AsyncSession], bus: MemoryBus, tracker: Tracker
) -> tuple[UiDeps, CallerIdentification]:
    """The UI's share of a server whose AMI link never connects, and the server's caller
    identification (the pops are built from what it publishes)."""
    ami = AmiClient(AmiSettings(secret="never-sent", port=9), on_event=lambda _m: None)  # noqa: S106
    control = AmiAgentControl(
        UiSettings(),
        node=NODE,
        links={NODE: ami},
        live=tracker,
        publish=bus.publish,
        queues=("support",),
        transfer_queues=("support",),
        own_queue=None,
    )
    deps = UiDeps(
        settings=UiSettings(),
        region="CN",
        node=NODE,
        bus=bus,
        live=tracker,
        control=control,
        db=db,
        redaction=SequenceRedaction("CN"),
        recording_names=recording_names,
        complaint_categories=CATEGORIES,
    )
    identification = CallerIdentification(db, "CN")  # who calls, as the server publishes it
    identification.subscribe(bus)
    return deps, identification


async def _records_read(
    ui: web.Application, identification: CallerIdentification, calls: int
) -> None:
    """The callers are "in the IVR" until they are identified and their records read."""
    await identification.settled()
    deadline = time.perf_counter() + 10
    # the desks take CustomerIdentified off their subscription: no event says they have
    while len(ui[POPS].lookups()) < calls and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0)
    await asyncio.gather(*ui[POPS].lookups())


async def pop_rounds(agents: int, rounds: int, workdir: Path) -> list[float]:
    engine = make_engine(f"sqlite+aiosqlite:///{workdir / 'crm.db'}")
    await upgrade(engine)
    db = async_sessionmaker(engine, expire_on_commit=False)
    users = await seed(db, agents)
    bus = MemoryBus()
    tracker = Tracker(bus.publish)
    deps, identification = _ui_deps(db, bus, tracker)
    ui = create_ui(deps)
    root = web.Application()
    root.add_subapp("/ui", ui)
    runner, port = await serve(root)
    base = f"http://127.0.0.1:{port}"
    cookies = await signed_in(ui[STORE], db, users)
    clients = Clients()

    def on_message(owner: Clients, message: dict[str, Any], now: float) -> None:
        if message["type"] == "pop":
            owner.note(message["call"]["linkedid"], now)

    latencies: list[float] = []
    try:
        await clients.open(f"{base}/ui/ws?view=desk", base, cookies, on_message)
        for round_no in range(rounds):
            clients.arrived.clear()
            clients.all_in.clear()
            clients.expected = agents
            started: dict[str, float] = {}
            for i in range(agents):
                linkedid = f"{round_no}.{i}"
                for message in (
                    {"Event": "Newchannel", "Uniqueid": linkedid, "Linkedid": linkedid,
                     "Channel": f"PJSIP/trunk-{round_no:02d}{i:04d}", "CallerIDNum": phone(i),
                     "CallerIDName": "", "Context": "cti-inbound", "Exten": "100",
                     "ChannelStateDesc": "Up"},
                    {"Event": "QueueCallerJoin", "Uniqueid": linkedid, "Linkedid": linkedid,
                     "Queue": "support", "Position": "1"},
                ):  # fmt: skip
                    event = translate(message, NODE)
                    assert event is not None
                    tracker.apply(event)
                bus.publish(
                    CallArrived(
                        node=NODE,
                        linkedid=linkedid,
                        uniqueid=linkedid,
                        channel=f"PJSIP/trunk-{i}",
                        caller_number=phone(i)[3:],
                        caller_name="",
                        dialed="100",
                    )
                )
            await _records_read(ui, identification, agents)
            for i in range(agents):
                linkedid = f"{round_no}.{i}"
                message = {
                    "Event": "AgentCalled", "Uniqueid": linkedid, "Linkedid": linkedid,
                    "Queue": "support", "MemberName": f"agent-{5000 + i}",
                    "Interface": f"PJSIP/{5000 + i}", "DestUniqueid": f"{linkedid}-a",
                }  # fmt: skip
                started[linkedid] = time.perf_counter()
                event = translate(message, NODE)
                assert event is not None
                tracker.apply(event)
            await until(clients.all_in, f"round {round_no}: every pop")
            latencies.extend((clients.arrived[key] - started[key]) * 1000 for key in started)
            for i in range(agents):  # the calls end; the next round rings again
                linkedid = f"{round_no}.{i}"
                event = translate(
                    {"Event": "Hangup", "Uniqueid": linkedid, "Linkedid": linkedid,
                     "Channel": f"PJSIP/trunk-{round_no:02d}{i:04d}", "Cause": "16"},
                    NODE,
                )  # fmt: skip
                assert event is not None
                tracker.apply(event)
            await asyncio.sleep(0)
    finally:
        await clients.close()
        await identification.close()
        await runner.cleanup()
        await engine.dispose()
    return latencies


async def bare_rounds(agents: int, rounds: int) -> tuple[list[float], list[float]]:
    """The floor: a bare endpoint pushing to N clients at once; and each client's echo RTT."""
    sockets: list[web.WebSocketResponse] = []
    connected = asyncio.Event()

    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.append(ws)
        if len(sockets) >= agents:
            connected.set()
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)  # echo
        return ws

    app = web.Application()
    app.router.add_get("/ws", endpoint)
    runner, port = await serve(app)
    clients = Clients()
    rtts: list[float] = []
    echoes: dict[str, float] = {}
    echoed = asyncio.Event()

    def on_message(owner: Clients, message: dict[str, Any], now: float) -> None:
        if message["type"] == "push":
            owner.note(message["key"], now)
        else:
            echoes[message["key"]] = now
            echoed.set()

    pushes: list[float] = []
    try:
        await clients.open(f"http://127.0.0.1:{port}/ws", "", [{}] * agents, on_message)
        await until(connected, "every bare client connected")
        for round_no in range(rounds):
            clients.arrived.clear()
            clients.all_in.clear()
            clients.expected = agents
            started = {}
            for i, ws in enumerate(sockets):
                key = f"{round_no}.{i}"
                started[key] = time.perf_counter()
                await ws.send_str(json.dumps({"type": "push", "key": key}))
            await until(clients.all_in, "every bare push")
            pushes.extend((clients.arrived[k] - started[k]) * 1000 for k in started)
            for i, client_ws in enumerate(clients.sockets):
                key = f"echo{round_no}.{i}"
                echoed.clear()
                sent = time.perf_counter()
                await client_ws.send_str(json.dumps({"type": "echo", "key": key}))
                await until(echoed, "an echo")
                rtts.append((echoes[key] - sent) * 1000)
    finally:
        await clients.close()
        await runner.cleanup()
    return pushes, rtts


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:<44} n={len(values):>5}  p50 {pct(values, 0.5):7.2f} ms  "
        f"p99 {pct(values, 0.99):7.2f} ms  max {max(values):7.2f} ms"
    )


async def main(agents: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        pops = await pop_rounds(agents, rounds, Path(workdir))
    pushes, rtts = await bare_rounds(agents, rounds)
    print(f"screen pop, {agents} concurrent calls to {agents} connected agents, {rounds} rounds")
    print(line("AMI AgentCalled -> pop parsed in the client", pops))
    print(line("bare websocket push -> parsed (floor)", pushes))
    print(line("bare websocket echo round trip", rtts))
    print(
        f"pop p99 / target: {pct(pops, 0.99):.2f} / {TARGET_P99_MS:.0f} ms; "
        f"pop p50 over bare push p50: {statistics.median(pops) / statistics.median(pushes):.1f}x"
    )


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100, help="concurrent calls and agents")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of N calls each")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _args()
    asyncio.run(main(arguments.agents, arguments.rounds))
