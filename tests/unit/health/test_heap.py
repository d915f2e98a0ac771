"""What lives when the server is up is left out of the garbage collector's full passes until it
stops, so a full pass walks only what was made since."""

from __future__ import annotations

import gc

import pytest
from aiohttp import web

from cti_server.health.heap import settled_heap


def _walked(thing: object) -> bool:
    return any(o is thing for o in gc.get_objects())


@pytest.mark.asyncio
async def test_the_long_lived_heap_is_frozen_while_the_server_runs_and_given_back_after() -> None:
    built_at_start = [{"call": n} for n in range(1000)]
    running = settled_heap(web.Application())
    await anext(running)
    try:
        made_later = [{"call": "new"}]
        assert not _walked(built_at_start)
        assert _walked(made_later)
    finally:
        await anext(running, None)
    assert gc.get_freeze_count() == 0
    assert _walked(built_at_start)
