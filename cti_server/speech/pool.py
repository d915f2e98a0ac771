"""Where recognizers run: a thread pool sized to the cores, off the event loop.

Kaldi decoding holds no Python lock while it works, so threads use every core; the event loop
only moves audio. Live calls are admitted up to a capacity; beyond it (or when a live stream
falls behind) a call is transcribed after it ends instead, and the counters say so.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass
class PoolCounters:
    live_calls: int = 0
    degraded_calls: int = 0  # admitted live, fell behind, finished after the call
    refused_live: int = 0  # no live capacity: transcribed after the call
    post_call_calls: int = 0
    transcribed_calls: int = 0
    failed_calls: int = 0
    segments: int = 0


class DecodePool:
    def __init__(self, workers: int = 0, max_live_calls: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.capacity = max_live_calls or self.workers
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        self._live = 0
        self.counters = PoolCounters()

    async def run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def admit_live(self) -> bool:
        """One more live call, if the pool has room for it."""
        if self._live >= self.capacity:
            self.counters.refused_live += 1
            return False
        self._live += 1
        self.counters.live_calls += 1
        return True

    def release_live(self) -> None:
        self._live = max(0, self._live - 1)

    @property
    def live_now(self) -> int:
        return self._live

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
