"""Two processes' buses share domain events through a real redis-server."""

from __future__ import annotations

import pytest

from cti_server.bus.redis import RedisBus
from cti_server.events import CallArrived, CallRouted, CallStarted
from tests.support.waiting import poll_until

pytestmark = pytest.mark.redis


def _arrival(linkedid: str) -> CallArrived:
    return CallArrived(
        node="pbx1",
        linkedid=linkedid,
        uniqueid=linkedid,
        channel="Local/s@x-1;1",
        caller_number="+8613800138000",
        caller_name="张伟",
        dialed="100",
    )


@pytest.mark.asyncio
async def test_event_published_on_one_bus_reaches_the_other_once(redis_url: str) -> None:
    first, second = RedisBus(redis_url), RedisBus(redis_url)
    await first.start()
    await second.start()
    try:

        async def _both_subscribed() -> bool:
            return first.connected and second.connected

        await poll_until(_both_subscribed, 10, what="both buses subscribed")
        local = first.subscribe(CallArrived)
        remote = second.subscribe(CallArrived)
        sent = _arrival("1700000000.1")
        first.publish(sent)

        assert await remote.get(timeout=5) == sent
        assert await local.get(timeout=5) == sent
        first.publish(_arrival("1700000000.2"))
        # the next event on the local side is the second one: the first came back only once
        nxt = await local.get(timeout=5)
        assert isinstance(nxt, CallArrived)
        assert nxt.linkedid == "1700000000.2"
        assert second.status()["ok"] is True
    finally:
        await first.stop()
        await second.stop()


@pytest.mark.asyncio
async def test_bus_keeps_working_locally_when_redis_is_unreachable() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0")
    await bus.start()
    try:
        local = bus.subscribe(CallArrived)
        sent = _arrival("1700000000.3")
        bus.publish(sent)
        assert await local.get(timeout=2) == sent
        status = bus.status()
        assert status["ok"] is False
        assert status["backlog"] == 1  # kept for Redis, not dropped
    finally:
        await bus.stop()


@pytest.mark.asyncio
async def test_events_of_a_node_this_process_follows_itself_are_not_delivered_twice(
    redis_url: str,
) -> None:
    here = RedisBus(redis_url, local_nodes=frozenset({"pbx1"}))
    there = RedisBus(redis_url)
    for bus in (here, there):
        await bus.start()
    try:

        async def _subscribed() -> bool:
            return here.connected and there.connected

        await poll_until(_subscribed, 10, what="both subscribed")
        seen = here.subscribe(CallStarted)
        for node in ("pbx1", "pbx2"):
            there.publish(
                CallStarted(
                    node=node, linkedid=f"{node}.1", caller_number="", caller_name="", dialed=""
                )
            )
        event = await seen.get(timeout=10)
        assert isinstance(event, CallStarted)
        assert event.node == "pbx2"  # pbx1's calls this process knows from its own AMI link

        async def _both_received() -> bool:
            return here.received == 2

        await poll_until(_both_received, 10, what="both events received")
        assert here.known_here == 1
    finally:
        for bus in (here, there):
            await bus.stop()


@pytest.mark.asyncio
async def test_the_routers_word_reaches_a_process_that_follows_the_node(redis_url: str) -> None:
    """Only the leader routes: its decisions reach the desks of every process."""
    here = RedisBus(redis_url, local_nodes=frozenset({"pbx1"}))
    there = RedisBus(redis_url)
    for bus in (here, there):
        await bus.start()
    try:

        async def _subscribed() -> bool:
            return here.connected and there.connected

        await poll_until(_subscribed, 10, what="both subscribed")
        seen = here.subscribe(CallRouted)
        routed = CallRouted(node="pbx1", linkedid="1.1", extension="3001", rule="r", decision={})
        there.publish(routed)
        assert await seen.get(timeout=10) == routed
    finally:
        for bus in (here, there):
            await bus.stop()
