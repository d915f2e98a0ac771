"""Event-loop watchdog: notices when the loop was blocked, so the model can be checked again.

While the loop is blocked nothing reads the AMI socket; Asterisk may drop the link (writetimeout)
or events may pile up. After a stall the watchdog asks for a resync of every node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopWatchdog:
    def __init__(
        self, on_stall: Callable[[float], None], interval: float = 0.25, threshold: float = 2.0
    ) -> None:
        self._on_stall = on_stall
        self._interval = interval
        self._threshold = threshold
        self.stalls = 0
        self.worst_lag = 0.0
        self.last_lag = 0.0

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self._interval)
            lag = time.monotonic() - started - self._interval
            self.last_lag = max(lag, 0.0)
            self.worst_lag = max(self.worst_lag, self.last_lag)
            if lag >= self._threshold:
                self.stalls += 1
                log.warning("event loop was blocked for %.1f s: checking the model again", lag)
                self._on_stall(lag)
