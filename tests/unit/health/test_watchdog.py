"""The loop watchdog notices a blocked loop and says where it was blocked."""

from __future__ import annotations

import asyncio
import time

import pytest

from cti_server.health.watchdog import LoopWatchdog


def _block_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # the blocking call a stall is made of


@pytest.mark.asyncio
async def test_a_blocked_loop_is_reported_with_the_code_that_blocked_it() -> None:
    lags: list[float] = []
    stalled = asyncio.Event()

    def on_stall(lag: float) -> None:
        lags.append(lag)
        stalled.set()

    watchdog = LoopWatchdog(on_stall, interval=0.05, threshold=0.4, sample_after=0.1)
    task = asyncio.create_task(watchdog.run())
    try:
        await asyncio.sleep(0.1)  # the watchdog's first beat
        _block_the_loop_for(0.6)
        await asyncio.wait_for(stalled.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watchdog.stalls == 1
    assert lags[0] >= 0.4
    assert "_block_the_loop_for" in watchdog.last_stack


@pytest.mark.asyncio
async def test_a_loop_that_keeps_beating_is_not_a_stall() -> None:
    lags: list[float] = []
    watchdog = LoopWatchdog(lags.append, interval=0.02, threshold=0.4, sample_after=0.1)
    task = asyncio.create_task(watchdog.run())
    try:
        for _ in range(20):
            _block_the_loop_for(0.01)
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watchdog.stalls == 0
    assert not lags
    assert watchdog.last_stack == ""
