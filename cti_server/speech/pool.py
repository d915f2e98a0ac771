"""Where recognizers run: a thread pool sized to the cores, off the event loop.

Kaldi decoding holds no Python lock while it works, so threads use every core; the event loop
only moves audio. Live calls are admitted up to a capacity, and not while a live stream is
already behind (its buffer past ``ADMIT_LAG_FRACTION`` of ``max_lag``): beyond that (or when a
live stream falls behind) a call is transcribed after it ends instead, and the counters say so.
Post-call decoding is the work that can wait: at most ``post_call_slots`` calls at once, each fed
in short chunks, so that live chunks always find a thread soon; the others queue (the backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
ADMIT_LAG_FRACTION = 0.5  # no new live call while a live stream is this far into max_lag


class Lagging(Protocol):
    @property
    def lag_seconds(self) -> float: ...


@dataclass
class PoolCounters:
    live_calls: int = 0
    degraded_calls: int = 0  # admitted live, fell behind, finished after the call
    refused_live: int = 0  # no live capacity (or a live stream behind): after the call
    refused_lagging: int = 0  # of those, refused because a live stream was behind
    post_call_calls: int = 0
    transcribed_calls: int = 0
    failed_calls: int = 0
    segments: int = 0


class DecodePool:
    def __init__(self, workers: int = 0, max_live_calls: int = 0, max_lag: float = 10.0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.capacity = max_live_calls or self.workers
        self.max_lag = max_lag
        self.post_call_slots = max(1, self.workers - 1)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        self._live = 0
        self._streams: set[Lagging] = set()
        self._post_call = asyncio.Semaphore(self.post_call_slots)
        self.post_call_backlog = 0  # calls waiting for, or in, post-call decoding
        self.counters = PoolCounters()

    async def run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def admit_live(self) -> bool:
        """One more live call, if the pool has room for it and no live stream is behind."""
        if self._live >= self.capacity:
            self.counters.refused_live += 1
            return False
        if self.lag_seconds > ADMIT_LAG_FRACTION * self.max_lag:
            self.counters.refused_live += 1
            self.counters.refused_lagging += 1
            return False
        self._live += 1
        self.counters.live_calls += 1
        return True

    def release_live(self) -> None:
        self._live = max(0, self._live - 1)

    def watch(self, stream: Lagging) -> None:
        """A live stream whose lag holds back admission while it decodes."""
        self._streams.add(stream)

    def unwatch(self, stream: Lagging) -> None:
        self._streams.discard(stream)

    @property
    def lag_seconds(self) -> float:
        """The largest lag among live streams now."""
        return max((s.lag_seconds for s in self._streams), default=0.0)

    @contextlib.asynccontextmanager
    async def post_call(self) -> AsyncIterator[None]:
        """A post-call slot: decoding after the call waits here while the slots are taken."""
        self.post_call_backlog += 1
        try:
            async with self._post_call:
                yield
        finally:
            self.post_call_backlog -= 1

    @property
    def live_now(self) -> int:
        return self._live

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
