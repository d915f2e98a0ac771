"""One leader among several processes (a lease in a real Redis), and the lead moving on."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import redis.asyncio as aioredis

from cti_server.bus.lease import RedisLease, SoleLeader
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.redis]


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_one_leader_at_a_time_and_the_lead_moves_when_it_stops(redis_url: str) -> None:
    name = f"routing-{time.monotonic_ns()}"
    first, second = RedisLease(redis_url, name, ttl=1.5), RedisLease(redis_url, name, ttl=1.5)
    one = asyncio.create_task(first.run())

    async def _first_leads() -> bool:
        return first.leading.is_set()

    await poll_until(_first_leads, 5, what="the first process leads")
    two = asyncio.create_task(second.run())
    try:
        # over two ttls the second never takes the lead while the first holds it
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(second.leading.wait(), 3.0)
        assert first.leading.is_set()
        started = time.monotonic()
        await _stop(one)  # a clean stop gives the lease back

        async def _second_leads() -> bool:
            return second.leading.is_set()

        await poll_until(_second_leads, 5, what="the second process takes the lead")
        assert time.monotonic() - started < 1.5
        assert not first.leading.is_set()
    finally:
        await _stop(one)
        await _stop(two)


@pytest.mark.asyncio
async def test_a_leader_that_died_holding_the_lease_is_replaced_after_its_ttl(
    redis_url: str,
) -> None:
    name = f"routing-{time.monotonic_ns()}"
    client = aioredis.Redis.from_url(redis_url)
    # what a killed leader leaves behind: its lease, never renewed again
    await client.set(f"cti:lease:{name}", "a-dead-process", px=1500)
    await client.aclose()
    started = time.monotonic()
    alive = RedisLease(redis_url, name, ttl=1.5)
    waiting = asyncio.create_task(alive.run())
    try:

        async def _alive_leads() -> bool:
            return alive.leading.is_set()

        await poll_until(_alive_leads, 5, what="the lead after the dead one's ttl")
        took = time.monotonic() - started
        assert 1.2 <= took < 3.5, took  # not before the dead lease lapsed, soon after
    finally:
        await _stop(waiting)


@pytest.mark.asyncio
async def test_alone_a_process_leads_at_once() -> None:
    assert SoleLeader().leading.is_set()
