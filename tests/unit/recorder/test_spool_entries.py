"""Journal entries are typed; a journal written before they were (flat dicts told apart by
their keys) still replays into the CRM after an upgrade."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import FollowUp, Interaction
from cti_server.bus.memory import MemoryBus
from cti_server.events import CallEnded, InteractionRecorded, NodeResynced
from cti_server.recorder.entries import (
    CallMerged,
    CallsEndedUnseen,
    InteractionUpdate,
    entry_from_stored,
    stored,
)
from cti_server.recorder.recorder import Recorder, interaction_update
from cti_server.recorder.spool import Spool
from tests.support.blank_crm import add_customer, blank_crm
from tests.support.waiting import poll_until

NUMBER = "+8613800138000"
AT = "2026-11-23T10:00:00+00:00"
OLD_SHAPE: list[dict[str, Any]] = [  # as the recorder journalled them before entries had a type
    {
        "node": "pbx1",
        "linkedid": "1.1",
        "arrived_at": AT,
        "kind": "inbound_call",
        "dialed": "600",
        "caller_number": NUMBER,
        "lookup": NUMBER,
    },
    {
        "node": "pbx1",
        "linkedid": "1.1",
        "callback": {
            "caller_number": NUMBER,
            "queue": "support",
            "estimated_wait": 420,
            "customer_id": None,
            "requested_at": AT,
            "kind": "callback",
            "recording": "",
            "position": 2,
            "joined_at": AT,
        },
    },
    {"node": "pbx1", "linkedid": "1.2", "arrived_at": AT, "kind": "inbound_call"},
    {"node": "pbx1", "linkedid": "1.2", "merged_into": "1.1"},
    {"node": "pbx1", "linkedid": "1.3", "arrived_at": AT, "kind": "inbound_call"},
    {"node": "pbx1", "end_unseen": ["1.1"], "seen_at": "2026-11-23T11:00:00+00:00"},
]


@pytest_asyncio.fixture
async def crm(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with blank_crm(tmp_path) as sessions:
        yield sessions


def test_each_kind_of_entry_reads_back_as_journalled() -> None:
    ended = CallEnded(
        node="pbx1",
        linkedid="2.1",
        outcome="abandoned",
        hung_up_by="caller",
        caller_number=NUMBER,
        caller_name="Li Na",
        dialed="600",
        queue="support",
        agent="",
        arrived_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
        queued_at=None,
        offered_at=None,
        answered_at=None,
    )
    merged = CallMerged(node="pbx1", linkedid="2.2", merged_into="2.1")
    unseen = interaction_update(NodeResynced(node="pbx1", live=["2.1"]))
    assert isinstance(unseen, CallsEndedUnseen)
    for entry in (interaction_update(ended), merged, unseen):
        assert entry is not None
        line = json.loads(json.dumps(stored(entry)))
        assert line["entry"] in ("interaction", "merged", "ended_unseen")
        assert entry_from_stored(line) == entry


def test_an_old_flat_entry_is_read_as_its_type() -> None:
    first, callback, *_, merged, _, unseen = OLD_SHAPE
    read = entry_from_stored(first)
    assert isinstance(read, InteractionUpdate)
    assert read.caller == NUMBER
    assert "lookup" not in read.fields
    assert read.crm_fields()["caller_number"] == NUMBER
    asked = entry_from_stored(callback)
    assert isinstance(asked, InteractionUpdate)
    assert asked.callback is not None
    assert asked.callback.position == 2
    assert entry_from_stored(merged) == CallMerged(node="pbx1", linkedid="1.2", merged_into="1.1")
    assert isinstance(entry_from_stored(unseen), CallsEndedUnseen)


@pytest.mark.asyncio
async def test_a_journal_left_in_the_old_shape_is_replayed_into_the_crm(
    crm: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    customer = await add_customer(crm, "Li Na", NUMBER)
    journal = tmp_path / "spool.jsonl"
    journal.write_text("".join(json.dumps(entry) + "\n" for entry in OLD_SHAPE), "utf-8")
    bus = MemoryBus()
    recorded: list[InteractionRecorded] = []
    bus.listen((InteractionRecorded,), recorded.append)  # type: ignore[arg-type]
    recorder = Recorder(bus, crm, Spool(journal), region="CN")
    task = asyncio.create_task(recorder.run())
    try:

        async def replayed() -> bool:
            return recorder.spooled == 0

        await poll_until(replayed, 10, what="the old journal replayed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with crm() as session:
        rows = {row.external_key: row for row in (await session.scalars(select(Interaction))).all()}
        tasks = (await session.scalars(select(FollowUp))).all()
    assert set(rows) == {"pbx1:1.1", "pbx1:1.3"}  # the merged call is forgotten
    assert rows["pbx1:1.1"].customer_id == customer
    assert rows["pbx1:1.1"].ended_at is None  # live at the resync
    assert rows["pbx1:1.3"].ended_at is not None  # ended unseen
    assert [(t.customer_id, t.queue_position) for t in tasks] == [(customer, 2)]
    assert [(e.linkedid, e.customer_id) for e in recorded][:2] == [
        ("1.1", customer),
        ("1.1", customer),
    ]
