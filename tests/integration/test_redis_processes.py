"""A second process sees the first's domain events through a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti_server.bus.redis import RedisBus
from cti_server.events import CallEnded, CallStarted
from cti_server.sim.simulation import place_customer_call
from tests.conftest import ami_observer, sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.serve import ServeProcess
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.redis]


@pytest.mark.asyncio
async def test_events_of_cti_serve_reach_another_process_through_redis(
    fresh_asterisk: AsteriskNode, redis_url: str, tmp_path: Path
) -> None:
    serve = ServeProcess(fresh_asterisk, tmp_path / "serve.log")
    serve.env.update(CTI_BUS__BACKEND="redis", CTI_BUS__REDIS_URL=redis_url)
    bus = RedisBus(redis_url)
    await bus.start()
    try:
        serve.start()
        await serve.wait_ready()

        async def _subscribed() -> bool:
            return bus.connected

        await poll_until(_subscribed, 10, what="subscribed to Redis")
        events = bus.subscribe(CallStarted, CallEnded)
        async with (
            ami_observer(fresh_asterisk) as (client, _),
            sim_agents(client, "support", ["7001"]),
        ):
            call = await place_customer_call(
                client,
                context=fresh_asterisk.settings.dialplan.inbound_context,
                number="+8613800138000",
                name="张伟",
                patience=20,
            )
            seen: dict[type, object] = {}
            while CallEnded not in seen:
                event = await events.get(timeout=30)
                if getattr(event, "linkedid", "") == call.uniqueid:
                    seen[type(event)] = event
        ended = seen[CallEnded]
        assert isinstance(ended, CallEnded)
        assert ended.outcome == "answered"
        assert ended.caller_name == "张伟"
        assert ended.node == fresh_asterisk.settings.ami.node
        assert CallStarted in seen
        assert serve.stop() == 0
    finally:
        await bus.stop()
        if serve.process is not None and serve.process.poll() is None:
            serve.process.kill()
