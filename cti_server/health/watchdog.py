"""Event-loop watchdog: notices when the loop was blocked, so the model can be checked again.

While the loop is blocked nothing reads the AMI socket; Asterisk may drop the link (writetimeout)
or events may pile up. After a stall the watchdog asks for a resync of every node.

A stall is only fixable when one knows what blocked: a sampler thread looks at the loop's thread
once the loop has missed a beat for ``sample_after`` seconds and keeps that stack, and the time the
garbage collector took meanwhile is counted, so the warning names the culprit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class LoopWatchdog:
    def __init__(
        self,
        on_stall: Callable[[float], None],
        interval: float = 0.25,
        threshold: float = 2.0,
        sample_after: float = 1.0,
    ) -> None:
        self._on_stall = on_stall
        self._interval = interval
        self._threshold = threshold
        self._sample_after = sample_after
        self.stalls = 0
        self.worst_lag = 0.0
        self.last_lag = 0.0
        self.last_stack = ""
        self._beat = time.monotonic()
        self._sampled: str | None = None
        self._gc_started = 0.0
        self._gc_seconds = 0.0

    async def run(self) -> None:
        stop = threading.Event()
        sampler = threading.Thread(
            target=self._sample,
            args=(threading.get_ident(), stop),
            name="loop-sampler",
            daemon=True,
        )
        sampler.start()
        gc.callbacks.append(self._count_gc)
        try:
            while True:
                started = time.monotonic()
                self._beat = started
                self._sampled = None
                self._gc_seconds = 0.0
                await asyncio.sleep(self._interval)
                lag = time.monotonic() - started - self._interval
                self.last_lag = max(lag, 0.0)
                self.worst_lag = max(self.worst_lag, self.last_lag)
                if lag >= self._threshold:
                    self._stalled(lag)
        finally:
            gc.callbacks.remove(self._count_gc)
            stop.set()

    def _stalled(self, lag: float) -> None:
        self.stalls += 1
        self.last_stack = self._sampled or ""
        log.warning(
            "event loop was blocked for %.1f s (garbage collection %.2f s): checking the model "
            "again; %.1f s into the stall the loop was at:\n%s",
            lag,
            self._gc_seconds,
            self._sample_after,
            self.last_stack or "(no sample: the loop thread held the interpreter throughout)",
        )
        self._on_stall(lag)

    def _sample(self, loop_thread: int, stop: threading.Event) -> None:
        """Runs in its own thread: keeps the loop thread's stack once it has missed its beat."""
        while not stop.wait(self._sample_after / 4):
            beat = self._beat
            if self._sampled is None and time.monotonic() - beat >= self._sample_after:
                frame = sys._current_frames().get(loop_thread)
                if frame is not None and beat == self._beat:
                    self._sampled = "".join(traceback.format_stack(frame)[-12:])

    def _count_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_seconds += time.perf_counter() - self._gc_started
