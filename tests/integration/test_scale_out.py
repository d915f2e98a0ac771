"""Scale-out: two `cti serve` processes, two Asterisk nodes, one Redis, one PostgreSQL.

Each process follows both nodes (its own first, the other as an extra node), so either can lead
the work done once (routing, taps, complaint judging) and either can show any call. The leader
is killed with SIGKILL: the other takes the lead within the lease, pops keep reaching an agent
signed in to it for calls on both nodes, and every call of the run is in the CRM once.

The agent is a queue member on both nodes (a simulated phone on each, answering at once), so
the calls come one at a time, each popped and wrapped up before the next, as a person takes
them: two calls at once would both be answered, and a desk shows one call. (They once came
together: on a loaded machine the other node's call could ring before this process had read
its caller's record, its pop then waited for the record while the call was answered and the
second call rang and was answered at the same desk, and the late pop, for a call the desk no
longer offered, was dropped as for a call taken elsewhere.)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.database import make_engine
from crm_core.models import Interaction
from crm_core.people import create_user
from cti_server.sim.simulation import SimulatedCall, place_customer_call
from tests.conftest import ami_observer, sim_agents
from tests.support.asterisk import AsteriskNode, start_node
from tests.support.postgres import PostgresServer
from tests.support.queue_log import all_ended
from tests.support.serve import ServeProcess
from tests.support.ui import sign_in
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

AGENT = "7101"
PASSWORD = "scale-out password"


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[AsteriskNode, AsteriskNode]]:
    first = start_node(f"s{uuid.uuid4().hex[:6]}", tmp_path / "one")
    second = start_node(f"s{uuid.uuid4().hex[:6]}", tmp_path / "two")
    yield first, second
    for node in (first, second):
        node.instance.stop()


QUICK_FLOW = """
name: main
languages: [en]
start: identify
steps:
  identify: {type: identify, found: queue, not_found: queue}
  queue: {type: transfer, queue: support}
"""


def _serve(
    mine: AsteriskNode, other: AsteriskNode, database: str, redis_url: str, log: Path
) -> ServeProcess:
    """A process following ``mine`` first and ``other`` as an extra node. Its inbound flow only
    identifies the caller (the CRM record is read while the call is in the IVR, so the pop is
    ready when the agent's phone rings) and queues the call."""
    flows = log.parent / f"flows-{mine.settings.ami.node}"
    flows.mkdir()
    (flows / "main.yaml").write_text(QUICK_FLOW, encoding="utf-8")
    serve = ServeProcess(mine, log)
    ami = other.settings.ami
    serve.env.update(
        CTI_IVR__INBOUND_FLOW="main",
        CTI_IVR__FLOWS_DIR=str(flows),
        CTI_BUS__BACKEND="redis",
        CTI_BUS__REDIS_URL=redis_url,
        CTI_BUS__LEASE_SECONDS="2",
        CTI_DATABASE__URL=database,
        CTI_UI__AGENT_INTERFACE="Local/{extension}@cti-sim-agent/n",
        CTI_UI__WRAPUP_SECONDS="5",
        CTI_EXTRA_NODES=json.dumps(
            [
                {
                    "host": ami.host,
                    "port": ami.port,
                    "username": ami.username,
                    "secret": ami.secret.get_secret_value(),
                    "node": ami.node,
                }
            ]
        ),
    )
    return serve


@pytest.mark.asyncio
async def test_the_leader_dies_and_the_other_process_leads_without_losing_a_call(
    two_nodes: tuple[AsteriskNode, AsteriskNode],
    postgres_server: PostgresServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    one, two = two_nodes
    database = postgres_server.create_database(f"scale_{uuid.uuid4().hex[:8]}")
    first = _serve(one, two, database, redis_url, tmp_path / "first.log")
    second = _serve(two, one, database, redis_url, tmp_path / "second.log")
    base = f"http://127.0.0.1:{second.port}"
    calls: list[tuple[AsteriskNode, SimulatedCall]] = []
    seen: list[str] = []  # the desk's messages, by type and call, for a failure's report
    try:
        first.start()
        await first.wait_ready()
        await _leading(first, True)
        second.start()
        await second.wait_ready()
        engine = make_engine(database)
        async with AsyncSession(engine) as session, session.begin():
            await create_user(
                session, username="agent7101", password=PASSWORD, role="agent", extension=AGENT
            )
        await engine.dispose()
        assert not await _is_leading(second)
        async with (
            ami_observer(one) as (client_one, _),
            ami_observer(two) as (client_two, _),
            sim_agents(client_one, "support", [AGENT]),
            sim_agents(client_two, "support", [AGENT]),
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            status, _ = await sign_in(http, base, "agent7101", PASSWORD)
            assert status == 303
            ws = await http.ws_connect(f"{base}/ui/ws?view=desk", headers={"Origin": base})
            await ws.send_json({"type": "state", "state": "available"})
            for round_ in ("before", "after"):
                if round_ == "after":
                    first.kill()  # the leader dies
                    await _leading(second, True)
                for node, client in ((one, client_one), (two, client_two)):
                    call = await place_customer_call(
                        client,
                        context=node.settings.dialplan.inbound_context,
                        number="+8613811112222",
                        name=f"Scale {round_}",
                        patience=20,
                    )
                    calls.append((node, call))
                    await _taken(
                        ws,
                        call.uniqueid,
                        seen,
                        60,
                        what=f"the call on {node.settings.ami.node} {round_} the leader died",
                    )
            await ws.close()
        for node in (one, two):
            on_node = {call.uniqueid for n, call in calls if n is node}
            queue_log = node.instance.log_dir / "queue_log"

            async def _done(queue_log: Path = queue_log, on_node: set[str] = on_node) -> Any:
                return all_ended(queue_log, on_node)

            await poll_until(_done, 60, interval=0.5, what="the calls ended in Asterisk")
        ids = [call.uniqueid for _, call in calls]

        async def _recorded() -> dict[str, int] | None:
            rows = await _interaction_counts(database, ids)
            return rows if len(rows) == len(ids) and all(rows.values()) else None

        counts = await poll_until(_recorded, 60, interval=0.5, what="every call in the CRM")
        assert counts == {linkedid: 1 for linkedid in ids}  # once each: none lost, none twice
        assert second.stop() == 0
    except Exception as exc:  # a CI failure says why: what the desk saw, what the servers did
        exc.add_note("desk saw: " + ", ".join(seen[-40:]))
        exc.add_note(f"first (killed in round 'after'):{first.log_tail(80)}")
        exc.add_note(f"second:{second.log_tail(80)}")
        raise
    finally:
        for serve in (first, second):
            if serve.process is not None and serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait(10)


async def _taken(
    ws: aiohttp.ClientWebSocketResponse,
    linkedid: str,
    seen: list[str],
    seconds: float,
    what: str,
) -> None:
    """Read the desk's messages until the call ``linkedid`` popped there and its wrap-up is
    done (the test finishes every wrap-up it is asked for), within ``seconds``. The bound is
    ``asyncio.timeout``, not ``receive``'s own timeout: aiohttp restarts that at every
    heartbeat ping the server sends, so a pop that never came left the test waiting until
    pytest-timeout killed it, saying nothing of why."""
    popped = wrapped = False
    try:
        async with asyncio.timeout(seconds):
            while not (popped and wrapped):
                message = await ws.receive_json()
                kind = str(message.get("type"))
                if kind == "pop":
                    shown = message["call"]
                    popped = popped or shown["linkedid"] == linkedid
                    seen.append(f"pop {shown['node']}:{shown['linkedid']}")
                    continue
                said = message.get("linkedid") or message.get("state") or ""
                seen.append(f"{kind} {said}".strip())  # a state, an answer, a wrap-up...
                if kind == "wrapup":
                    await ws.send_json(
                        {"type": "wrapup", "linkedid": said, "disposition": "resolved"}
                    )
                elif kind == "wrapped":
                    wrapped = wrapped or (popped and said == linkedid)
    except TimeoutError:
        state = "its wrap-up not done" if popped else "no pop"
        raise AssertionError(f"{what}: {state} within {seconds} s") from None


async def _is_leading(serve: ServeProcess) -> bool:
    _, body = await serve.get("/status")
    return bool(body and body.get("leader", {}).get("leading"))


async def _leading(serve: ServeProcess, wanted: bool) -> None:
    async def _check() -> bool:
        return await _is_leading(serve) == wanted

    await poll_until(_check, 10, what=f"leading={wanted}")


async def _interaction_counts(database: str, ids: list[str]) -> dict[str, int]:
    """Ended interactions per linkedid, read straight from PostgreSQL."""
    engine = make_engine(database)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Interaction.external_key, func.count())
                .where(Interaction.ended_at.is_not(None))
                .group_by(Interaction.external_key)
            )
            found = {key.split(":", 1)[1]: count for key, count in rows}
    finally:
        await engine.dispose()
    return {linkedid: found[linkedid] for linkedid in ids if linkedid in found}
