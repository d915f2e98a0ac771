"""The README's main command in smoke mode: `cti demo` starts, an agent gets a pop, it stops.

`scripts/demo` is `scripts/bootstrap` then `cti demo`; this runs `cti demo` itself, as a newcomer
would after the bootstrap, on ports and an Asterisk instance of its own. The demo's agent
answers in the browser: the demo says how to sign in and that the browser asks for the
microphone, and the agent's phone registers over WSS with the hash of the password the demo
made for it (here a small SIP-over-websocket client stands in for the page, whose own audio is
tests/browser/test_desk_phone.py's). The demo routes: the call that rings the person signed in
was given to them by the router, which says why.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.database import make_engine
from crm_core.models import Interaction
from cti_server.asterisk.sip_digests import read_digests
from cti_server.sim.demo import DEMO_EXTENSION, SIM_AGENTS
from tests.support.asterisk import require_chroot
from tests.support.ports import free_port
from tests.support.serve import CTI
from tests.support.sip_ws import registered
from tests.support.ui import sign_in
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

ACCOUNT = re.compile(r"^\s+(agent|supervisor|manager|admin)\s+(\S+)\s*$", re.MULTILINE)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    require_chroot()
    port = free_port()
    name = f"d{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    env.update(
        CTI_AMI__SECRET=secrets.token_urlsafe(16),
        CTI_AMI__PORT=str(free_port()),
        CTI_AMI__NODE=name,
        CTI_AGI__PORT=str(free_port()),
        CTI_HTTP__PORT=str(port),
        CTI_SPEECH__PORT=str(free_port()),
        CTI_DIALPLAN__SIP_PORT=str(free_port(socket.SOCK_DGRAM)),
        CTI_DIALPLAN__WSS_PORT=str(free_port()),
        CTI_DIALPLAN__SIP_DIGESTS=str(tmp_path / "sip-digests.json"),
        CTI_ASTERISK__INSTANCE=name,
        CTI_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        CTI_RECORDER__SPOOL_PATH=str(tmp_path / "spool.jsonl"),
    )
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CTI, "demo", "--customers", "200", "--every", "3"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, log, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        subprocess.run([CTI, "asterisk", "down"], env=env, check=False, capture_output=True)


@pytest.mark.asyncio
async def test_the_demo_pops_a_simulated_caller_to_a_signed_in_agent_then_stops(
    demo: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    process, log, port = demo
    base = f"http://127.0.0.1:{port}"

    async def _accounts() -> dict[str, str] | None:
        text = log.read_text(encoding="utf-8", errors="replace")
        assert process.poll() is None, f"cti demo exited early:\n{text[-3000:]}"
        found = dict(ACCOUNT.findall(text)) if "The demo call center is up" in text else {}
        return found or None

    accounts = await poll_until(_accounts, 120, interval=0.5, what="the demo's accounts")
    assert set(accounts) == {"agent", "supervisor", "manager", "admin"}
    said = " ".join(log.read_text(encoding="utf-8").split())
    assert f"open {base}/ui/ in Chrome or Firefox, sign in as agent" in said
    assert "allow the microphone when the browser asks" in said
    ha1 = read_digests(log.parent / "sip-digests.json")[DEMO_EXTENSION]
    wss = re.findall(r"wss://127\.0\.0\.1:\d+/ws", said)[0]

    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        registered(wss, DEMO_EXTENSION, ha1),
    ):
        status, _ = await poll_until(
            lambda: _signed_in(http, base, accounts["agent"]), 30, what="the agent signs in"
        )
        assert status == 303
        ws = await http.ws_connect(f"{base}/ui/ws?view=desk", headers={"Origin": base})
        await ws.send_json({"type": "state", "state": "available"})

        async def _pop() -> dict[str, Any] | None:
            message = await ws.receive_json(timeout=60)
            return message if message.get("type") == "pop" else None

        pop = await poll_until(_pop, 90, what="a simulated caller rang the agent's phone")
        await ws.close()
    assert pop["call"]
    linkedid = pop["call"]["linkedid"]
    engine = make_engine(f"sqlite+aiosqlite:///{log.parent / 'demo.db'}", None)

    async def _decision() -> dict[str, Any] | None:
        async with AsyncSession(engine) as session:
            routing = await session.scalar(
                select(Interaction.routing).where(Interaction.external_key.endswith(linkedid))
            )
        decision = (routing or {}).get("decision")
        return dict(decision) if decision else None

    async def _virtual_agents_routed() -> set[str] | None:
        async with AsyncSession(engine) as session:
            rows = await session.scalars(select(Interaction.routing))
        agents = {str(r["decision"]["agent"]) for r in rows if r and r.get("decision")}
        return agents & set(SIM_AGENTS) or None

    try:
        decision = await poll_until(_decision, 30, what="the router's decision on the call")
        # the virtual agents signed in the routed way: the router gives them calls too
        await poll_until(_virtual_agents_routed, 60, what="a call routed to a virtual agent")
    finally:
        await engine.dispose()
    assert decision["agent"] == "1001", "the router gave the call to the person signed in"
    assert decision["rule"]
    assert decision["candidates"][0]["agent"] == "1001"
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


async def _signed_in(
    http: aiohttp.ClientSession, base: str, password: str
) -> tuple[int, Any] | None:
    try:
        status, cookie = await sign_in(http, base, "agent", password)
    except aiohttp.ClientError:
        return None
    return (status, cookie) if status in (302, 303) else None
