"""One CTI server following two Asterisk nodes: calls on each are tracked and recorded apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker

from cti_server.app import DATABASE, LINKS, build_app
from cti_server.config import RecorderSettings
from tests.conftest import ami_observer, sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import call_through_ivr
from tests.support.queue_log import recorded_calls
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.mark.asyncio
async def test_calls_on_two_nodes_are_kept_apart(
    asterisk_node: AsteriskNode, fresh_asterisk: AsteriskNode, tmp_path: Path
) -> None:
    settings = asterisk_node.settings.model_copy(
        update={
            "extra_nodes": (fresh_asterisk.settings.ami,),
            "recorder": RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
        }
    )
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        for link in app[LINKS]:
            await link.wait_connected(10)
        calls = []
        for node in (asterisk_node, fresh_asterisk):
            async with ami_observer(node) as observer, sim_agents(observer[0], "support", ["6001"]):
                call = await call_through_ivr(
                    observer, node, "+8613800138000", until="answered", within=20, patience=20
                )
                calls.append((node.settings.ami.node, call.uniqueid))
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        callids = {uniqueid for _, uniqueid in calls}

        async def _recorded() -> object:
            return await recorded_calls(sessions, callids)

        recorded = await poll_until(_recorded, 20, what="both calls in the CRM")
        assert isinstance(recorded, dict)
        for name, uniqueid in calls:
            assert recorded[uniqueid].external_key == f"{name}:{uniqueid}"
            assert recorded[uniqueid].answered_at is not None
        assert len({name for name, _ in calls}) == 2
    finally:
        await runner.cleanup()
