"""Faults with real Asterisk: the CTI server killed mid-call, the database gone mid-call."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.database import make_engine
from crm_core.models import Interaction
from cti_server.app import AMI, RECORDER, SCHEMA_READY, build_app
from cti_server.config import DatabaseSettings, RecorderSettings
from cti_server.sim.simulation import place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import ami_observer, sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.postgres import PostgresServer
from tests.support.queue_log import (
    all_ended,
    assert_recorded_as_asterisk_saw,
    read_queue_log,
    recorded_calls,
)
from tests.support.serve import CTI, ServeProcess
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture
def serve(fresh_asterisk: AsteriskNode, tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(fresh_asterisk, tmp_path / "serve.log")
    subprocess.run(
        [CTI, "crm", "user", "sup", "--role", "supervisor"],
        env={**process.env, "CTI_NEW_PASSWORD": "supervisor-password"},
        check=True,
        capture_output=True,
    )
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait(10)


async def _live_channels(client: AmiClient) -> set[str]:
    reply = await client.send_action("CoreShowChannels", timeout=10)
    messages = reply if isinstance(reply, list) else [reply]
    return {str(m.get("Linkedid")) for m in messages if m.get("Event") == "CoreShowChannel"}


@pytest.mark.asyncio
async def test_kill_9_during_ten_live_calls_then_restart(
    fresh_asterisk: AsteriskNode, serve: ServeProcess
) -> None:
    settings = fresh_asterisk.settings
    queue_log = fresh_asterisk.instance.log_dir / "queue_log"
    numbers = [f"+86139{n:08d}" for n in range(10)]
    serve.start()
    await serve.wait_ready()
    async with (
        ami_observer(fresh_asterisk) as (client, _),
        sim_agents(client, "support", ["3001", "3002", "3003", "3004", "3005"]),
    ):
        placed = await asyncio.gather(
            *(
                place_customer_call(
                    client,
                    context=settings.dialplan.inbound_context,
                    number=number,
                    name="Kill Test",
                    patience=40,
                    talk=4 + 2 * n,  # ending one by one: some while the server is down, some after
                )
                for n, number in enumerate(numbers)
            )
        )
        callids = {call.uniqueid for call in placed}

        async def _some_answered() -> bool:
            calls = read_queue_log(queue_log, callids)
            return sum(c.outcome == "answered" for c in calls.values()) >= 3

        await poll_until(_some_answered, 30, what="three calls answered")
        serve.kill()
        ended_before = _ended(queue_log, callids)

        async def _one_ended_unseen() -> bool:
            return bool(_ended(queue_log, callids) - ended_before)

        # a call that ends while no server listens must not stay open in the CRM for ever
        await poll_until(_one_ended_unseen, 30, what="a call ended while the server was down")
        surely_unseen = _ended(queue_log, callids) - ended_before
        serve.start()
        await serve.wait_ready()
        token = await serve.token("sup", "supervisor-password")

        async def _tracker_matches_asterisk() -> bool:
            asterisk = await _live_channels(client) & callids
            _, live = await serve.get("/live", token)
            tracked = {c["linkedid"] for c in live["calls"]} & callids if live else set()
            return bool(asterisk) and tracked == asterisk

        await poll_until(_tracker_matches_asterisk, 10, what="tracker equal to Asterisk")
        # ended before the restarted server's resync, or just after it (then seen ending)
        ended_unseen = _ended(queue_log, callids) - ended_before

        async def _asterisk_done() -> dict[str, Any] | None:
            return all_ended(queue_log, callids)

        truth = await poll_until(_asterisk_done, 90, interval=0.5, what="all calls ended")

    engine = make_engine(settings.database.url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def _recorded() -> Any:
        return await recorded_calls(sessions, callids)

    try:
        recorded = await poll_until(_recorded, 30, interval=0.3, what="all ten calls in the CRM")
    except AssertionError as exc:
        exc.add_note(await _what_the_crm_has(sessions, callids) + serve.log_tail())
        raise
    finally:
        await engine.dispose()
    assert_recorded_as_asterisk_saw(
        recorded, truth, numbers, missed_queue_joins=True, ended_unseen=ended_unseen
    )
    assert all(recorded[c].routing.get("end_unseen") for c in surely_unseen), surely_unseen
    status, _ = await serve.get("/live")
    assert status == 401
    assert serve.stop() == 0


def _ended(queue_log: Path, callids: set[str]) -> set[str]:
    return {c for c, call in read_queue_log(queue_log, callids).items() if call.ended}


async def _what_the_crm_has(sessions: async_sessionmaker[AsyncSession], callids: set[str]) -> str:
    async with sessions() as session:
        rows = (await session.scalars(select(Interaction))).all()
    found = {r.external_key.split(":", 1)[1]: r for r in rows}
    return "\n".join(
        f"{c}: " + (f"{found[c].kind} ended {found[c].ended_at}" if c in found else "missing")
        for c in sorted(callids)
    )


@pytest.mark.asyncio
async def test_database_unreachable_during_ten_calls_then_everything_lands_in_order(
    asterisk_node: AsteriskNode, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    name = f"faults_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    proxy = TcpProxy("127.0.0.1", postgres_server.port)
    await proxy.start()
    settings = asterisk_node.settings.model_copy(
        update={
            "database": DatabaseSettings(
                url=url.replace(f":{postgres_server.port}/", f":{proxy.port}/")
            ),
            "recorder": RecorderSettings(spool_path=tmp_path / "spool.jsonl", retry_seconds=0.3),
        }
    )
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    queue_log = asterisk_node.instance.log_dir / "queue_log"
    numbers = [f"+86137{n:08d}" for n in range(10)]
    try:
        await app[AMI].wait_connected(10)
        await asyncio.wait_for(app[SCHEMA_READY].wait(), 30)
        proxy.cut()
        async with (
            ami_observer(asterisk_node) as (client, _),
            sim_agents(client, "support", ["5001", "5002", "5003", "5004", "5005"]),
        ):
            placed = []
            for number in numbers:
                placed.append(
                    await place_customer_call(
                        client,
                        context=settings.dialplan.inbound_context,
                        number=number,
                        name="Outage",
                        patience=6,
                    )
                )
            callids = {call.uniqueid for call in placed}

            async def _asterisk_done() -> Any:
                return all_ended(queue_log, callids)

            truth = await poll_until(_asterisk_done, 90, interval=0.5, what="all calls ended")
        recorder = app[RECORDER].status()
        assert recorder["ok"] is False
        assert recorder["spooled"] >= 40
        proxy.restore()
        engine = make_engine(url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)

        async def _recorded() -> Any:
            return await recorded_calls(sessions, callids)

        try:
            recorded = await poll_until(_recorded, 30, interval=0.3, what="all ten in the CRM")
        finally:
            await engine.dispose()
        assert_recorded_as_asterisk_saw(recorded, truth, numbers)
        # replayed in the order things happened: rows were created in the order calls arrived
        by_arrival = sorted(callids, key=lambda c: recorded[c].arrived_at)
        assert sorted(callids, key=lambda c: recorded[c].id) == by_arrival
        assert app[RECORDER].status()["ok"] is True
    finally:
        await runner.cleanup()
        await proxy.stop()
