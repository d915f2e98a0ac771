"""Stopping background tasks without hiding a crash or swallowing our own cancellation.

``task.cancel()`` then ``with suppress(CancelledError): await task`` has two faults: a task that
crashed instead of stopping has its error silently dropped, and when the caller is itself
cancelled while it waits, that cancellation is swallowed too (the caller carries on as if nothing
happened; a reconnect loop then never ends).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait until each has ended; log any that failed.

    A cancellation of the caller that arrives meanwhile is raised once every task has ended.
    """
    for task in tasks:
        task.cancel()
    current = asyncio.current_task()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass  # the task's own end, or ours: told apart below, once every task has ended
        except Exception:
            log.exception("background task %s failed", task.get_name())
    if current is not None and current.cancelling():
        raise asyncio.CancelledError  # the caller was cancelled meanwhile (or before): go on
