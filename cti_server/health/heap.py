"""The server's long-lived objects kept out of the garbage collector's full passes.

What the server builds as it starts (modules, settings, mappers, routes, the models) lives as long
as the process, yet every full collection walks all of it: on a busy two-core machine one such walk
blocked the event loop for 2-3.6 s (the watchdog caught it), long enough for a caller's key to fall
outside the IVR's listening window. Frozen once the server is up, a full pass walks only what was
made since (``bench/gc_pause.py`` prints the difference).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web


def settle() -> None:
    """Everything alive now is long-lived: keep it out of later collections."""
    gc.freeze()


async def settled_heap(_app: web.Application) -> AsyncIterator[None]:
    """A ``cleanup_ctx``: freezes the heap once the server is up; gives it back at shutdown, so a
    process that builds servers one after another (tests, a restart in place) can free them."""
    settle()
    yield
    gc.unfreeze()
