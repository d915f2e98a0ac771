"""The recorder's health in ``/status`` says whether the database refuses writes, nothing else."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.interactions import find_interaction
from cti_server.bus import MemoryBus
from cti_server.events import CallStarted
from cti_server.recorder.recorder import Recorder
from cti_server.recorder.spool import Spool
from tests.support.waiting import poll_until

Sessions = async_sessionmaker[AsyncSession]


def _call(linkedid: str) -> CallStarted:
    return CallStarted(
        node="pbx1", linkedid=linkedid, caller_number="+8613900000001", caller_name="", dialed="1"
    )


@pytest.mark.asyncio
async def test_calls_arriving_while_it_writes_are_not_failures(
    crm: Sessions, tmp_path: Path
) -> None:
    """A busy, healthy server: a call is journalled while the previous one is being written.
    It is written straight after, and the recorder never reports the database as failing (the
    demo's /status flapped to 503 with ``failed_writes 0``)."""
    bus = MemoryBus()
    seen: list[bool] = []

    def sessions() -> AbstractAsyncContextManager[AsyncSession]:
        seen.append(recorder.status()["ok"])
        if len(seen) == 1:  # the first write has begun: the next call arrives meanwhile
            bus.publish(_call("v2"))
        return crm()

    # a failing drain waits retry_seconds before trying again: far longer than the poll below
    recorder = Recorder(
        bus,
        sessions,  # type: ignore[arg-type]
        Spool(tmp_path / "spool.jsonl"),
        region="CN",
        retry_seconds=60,
    )
    task = asyncio.create_task(recorder.run())
    try:
        bus.publish(_call("v1"))

        async def both_written() -> bool:
            async with crm() as s:
                return all([await find_interaction(s, "pbx1", k) for k in ("v1", "v2")])

        await poll_until(both_written, 10, what="both calls in the CRM")
        assert recorder.status() == {"ok": True, "written": 2, "spooled": 0, "failed_writes": 0}
        assert all(seen), seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
