"""End to end under rising load: the highest arrival rate with no lost interaction and pops in time.

    .venv/bin/python bench/e2e_load.py [--rates 20,40,80,160] [--seconds 60] [--agents 20]

Everything real, on this machine: an Asterisk instance of its own (the cached chroot), `cti
serve` as a child process (SQLite, the in-process bus, the IVR on), N agent users signed in to
the desktop over HTTP with one websocket each (their phones are simulated: they answer and talk
for the call's drawn time), and `cti simulate`'s traffic (CRM customers walking the IVR by
keys). For each rate, calls arrive for ``--seconds`` (Poisson); then the bench waits for them to
end and reports:

- calls placed, and interactions missing from the CRM (lost: must be 0);
- pop latency: from Asterisk's ``AgentCalled`` (read on the bench's own AMI link) to the pop
  parsed by that agent's websocket client, p50 / p99 (target p99 < 100 ms);
- CPU of `cti serve` and of Asterisk over the step, in % of one core.

The highest rate that met both targets is printed last. It prints figures and never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crm_core.database import make_engine  # noqa: E402
from crm_core.models import Interaction  # noqa: E402
from crm_core.people import create_user  # noqa: E402
from crm_core.seed import seed_crm  # noqa: E402
from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance  # noqa: E402
from cti_server.config import Settings, load_settings, serve_environment  # noqa: E402
from cti_server.sim.arrivals import poisson  # noqa: E402
from cti_server.sim.callers import load_callers  # noqa: E402
from cti_server.sim.runner import CallSimulator  # noqa: E402
from cti_server.telephony.ami_client import AmiClient  # noqa: E402

CTI = str(Path(sys.executable).parent / "cti")
PASSWORD = "bench password"  # noqa: S105 - users of a throwaway database
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PHONE = "Local/{extension}@cti-sim-agent/n"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_settings(work: Path) -> Settings:
    name = f"b{secrets.token_hex(3)}"
    return load_settings(
        None,
        ami={"secret": secrets.token_urlsafe(16), "port": free_port(), "node": name},
        agi={"port": free_port()},
        http={"port": free_port()},
        speech={"port": free_port()},
        database={"url": f"sqlite+aiosqlite:///{work / 'bench.db'}"},
        dialplan={"sip_port": free_port(socket.SOCK_DGRAM), "sim_talk_seconds": 5},
        asterisk={"instance": name},
        recorder={"spool_path": str(work / "spool.jsonl")},
        ivr={"survey_flow": None},
        ui={"agent_interface": PHONE},
    )


class Agents:
    """Agent users signed in to the desktop, one websocket each, every pop timed on arrival."""

    def __init__(self, base: str, count: int) -> None:
        self.base = base
        self.count = count
        self.pops: dict[tuple[str, str], float] = {}  # (linkedid, extension) -> when
        self._sessions: list[aiohttp.ClientSession] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def sign_in_all(self) -> None:
        for n in range(self.count):
            extension = str(5001 + n)
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            self._sessions.append(http)
            async with http.get(f"{self.base}/ui/login") as page:
                token = CSRF.search(await page.text())
            assert token is not None
            async with http.post(
                f"{self.base}/ui/login",
                data={"username": f"agent{extension}", "password": PASSWORD, "csrf": token[1]},
                allow_redirects=False,
            ) as answer:
                assert answer.status in (302, 303), answer.status
            ws = await http.ws_connect(
                f"{self.base}/ui/ws?view=desk", headers={"Origin": self.base}
            )
            await ws.send_json({"type": "state", "state": "available"})
            self._tasks.append(asyncio.create_task(self._read(ws, extension)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, extension: str) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = message.json()
            if data.get("type") == "pop":
                self.pops[(str(data["call"]["linkedid"]), extension)] = time.perf_counter()
            elif data.get("type") == "wrapup":  # the call ended: note it, take the next one
                await ws.send_json(
                    {"type": "wrapup", "linkedid": data["linkedid"], "disposition": "resolved"}
                )
                await ws.send_json({"type": "state", "state": "available"})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for http in self._sessions:
            await http.close()


async def serving(base: str) -> None:
    """Until the child ``cti serve`` answers with its database up (60 s at most)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/status") as answer:
                    if (await answer.json()).get("database", {}).get("ok"):
                        return
            await asyncio.sleep(0.2)  # waiting for a child process to come up


async def add_agent_users(engine: Any, count: int) -> None:
    """Desk users ``agent5001``... at extensions 5001..., the ones :class:`Agents` signs in."""
    async with AsyncSession(engine) as session, session.begin():
        for n in range(count):
            extension = str(5001 + n)
            await create_user(
                session,
                username=f"agent{extension}",
                password=PASSWORD,
                role="agent",
                extension=extension,
            )


async def run(args: argparse.Namespace) -> None:  # noqa: PLR0915 - one bench, start to end
    work = Path(tempfile.mkdtemp(prefix="cti-e2e-"))
    settings = bench_settings(work)
    instance = AsteriskInstance(AsteriskChroot(), settings.asterisk.instance, settings)
    instance.up()
    log = (work / "serve.log").open("wb")
    serve = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured steps
        [CTI, "serve"], env=serve_environment(settings), stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{settings.http.port}"
    engine = make_engine(settings.database.url)
    rings: dict[tuple[str, str], float] = {}

    def on_event(message: Message) -> None:
        if message.get("Event") == "AgentCalled":
            member = str(message.get("MemberName") or message.get("Interface", ""))
            extension = "".join(ch for ch in member if ch.isdigit())[-4:]
            rings[(str(message.get("Linkedid")), extension)] = time.perf_counter()

    observer = AmiClient(settings.ami, on_event)
    watching = asyncio.create_task(observer.run())
    agents = Agents(base, args.agents)
    try:
        await serving(base)
        await seed_crm(engine, 500, region="CN")
        await add_agent_users(engine, args.agents)
        async with AsyncSession(engine) as session:
            callers = await load_callers(session)
        await observer.wait_connected(30)
        await agents.sign_in_all()
        print(f"{args.agents} agents signed in; calls of ~{settings.dialplan.sim_talk_seconds} s")
        print("rate/min  placed  lost  pop p50 ms  pop p99 ms  cti CPU %  Asterisk CPU %")
        best = None
        for rate in args.rates:
            rings.clear()
            agents.pops.clear()
            cti_before, ast_before = cpu_seconds(serve.pid), cpu_seconds(instance.pid())
            started = time.monotonic()
            simulator = CallSimulator(settings, callers, seed=rate)
            rng = random.Random(rate)  # noqa: S311 - simulated traffic, repeatable
            arrivals = poisson(rate, rng, mean_patience=60.0, mean_talk=5.0)
            summary = await simulator.run(arrivals, max_calls=int(rate * args.seconds / 60))
            elapsed = time.monotonic() - started
            cti_cpu = 100 * (cpu_seconds(serve.pid) - cti_before) / elapsed
            ast_cpu = 100 * (cpu_seconds(instance.pid()) - ast_before) / elapsed
            lost = await missing(engine, set(simulator.placed_calls()))
            latencies = sorted(
                1000 * (popped - rings[key]) for key, popped in agents.pops.items() if key in rings
            )
            p50 = statistics.median(latencies) if latencies else float("nan")
            p99 = (
                latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
                if latencies
                else float("nan")
            )
            print(
                f"{rate:8.0f}  {summary.placed:6d}  {lost:4d}  {p50:10.1f}  {p99:10.1f}"
                f"  {cti_cpu:9.0f}  {ast_cpu:14.0f}"
            )
            if lost == 0 and latencies and p99 < 100:
                best = rate
        print(f"highest rate with no lost interaction and pop p99 < 100 ms: {best} calls/min")
    finally:
        await agents.close()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        serve.terminate()
        serve.wait(30)
        instance.stop()
        await engine.dispose()


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), values[min(len(values) - 1, int(0.99 * len(values)))]


async def missing(engine: Any, ids: set[str]) -> int:
    """Interactions not in the CRM once the recorder had time to write (30 s at most)."""
    deadline = time.monotonic() + 30
    found: set[str] = set()
    while time.monotonic() < deadline:
        async with AsyncSession(engine) as session:
            keys = await session.scalars(select(Interaction.external_key))
            found = {key.split(":", 1)[1] for key in keys} & ids
        if found == ids:
            break
        await asyncio.sleep(0.5)  # polling the database with a deadline
    return len(ids - found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,40,80,160", help="calls per minute, rising")
    parser.add_argument("--seconds", type=float, default=60.0, help="arrivals per step")
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
