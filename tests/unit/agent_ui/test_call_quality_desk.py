"""The desk's ``call_quality`` message, end to end in one process: from alice's desk socket,
over the bus, into the recorder's journal and onto the call's interaction in the CRM, beside
what the recorder wrote of the call; refused from a colleague's desk, and when malformed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crm_core.interactions import find_interaction
from cti_server.events import CallQualityReported, DomainEvent
from cti_server.recorder.recorder import Recorder
from cti_server.recorder.spool import Spool
from tests.support.desk import ALICE, NODE, Ui, answered, arrived, ended, next_of, ringing
from tests.support.ui_server import REGION
from tests.support.waiting import poll_until

LINKEDID = "1700000000.51"


def _report(**changes: Any) -> dict[str, Any]:
    return {
        "type": "call_quality",
        "linkedid": LINKEDID,
        "seconds": 42.5,
        "final": True,
        "jitter_ms": 12.0,
        "packet_loss_pct": 5.0,
        "rtt_ms": 80.0,
        "audio_level_in": 0.21,
        "audio_level_out": 0.08,
        "packets_received": 2090,
        "packets_lost": 110,
        **changes,
    }


@pytest_asyncio.fixture
async def recorded(ui: Ui, tmp_path: Path) -> AsyncIterator[tuple[Spool, asyncio.Event]]:
    """The recorder on the desks' bus, its database held back (``schema_ready`` unset, as while
    migrations run) until the test lets it write: what it takes waits in the journal."""
    ready = asyncio.Event()
    journal = Spool(tmp_path / "spool.jsonl")
    recorder = Recorder(ui.bus, ui.db, journal, region=REGION, schema_ready=ready)
    task = asyncio.create_task(recorder.run())
    try:
        yield journal, ready
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _answered_by_alice(ui: Ui) -> Any:
    alice = await ui.desk("alice")
    ui.publish(arrived(LINKEDID), ringing(LINKEDID, ALICE))
    assert (await next_of(alice, "pop"))["call"]["linkedid"] == LINKEDID
    ui.publish(answered(LINKEDID, ALICE))
    await next_of(alice, "answered")
    return alice


@pytest.mark.asyncio
async def test_the_desks_report_is_journalled_then_stored_on_the_calls_interaction(
    ui: Ui, recorded: tuple[Spool, asyncio.Event]
) -> None:
    journal, database_ready = recorded
    alice = await _answered_by_alice(ui)
    await alice.send_json(_report(final=False, seconds=60.0, packet_loss_pct=0.0))
    ui.publish(ended(LINKEDID, ALICE))
    await next_of(alice, "wrapup")
    await alice.send_json(_report())  # the call is over: its final summary replaces the first

    async def _journalled() -> bool:
        return sum("quality" in entry.get("fields", {}) for entry in journal.entries()) == 2

    await poll_until(_journalled, 10, what="the report in the recorder's journal")
    database_ready.set()

    async def _stored() -> dict[str, Any] | None:
        async with ui.db() as session:
            row = await find_interaction(session, NODE, LINKEDID)
        done = row is not None and (row.quality or {}).get("8101", {}).get("final")
        return row.quality if done and row is not None else None

    quality = await poll_until(_stored, 10, what="the call's quality in the CRM")
    assert set(quality) == {"8101"}
    stored = quality["8101"]
    assert stored["seconds"] == 42.5
    assert stored["packet_loss_pct"] == 5.0
    assert stored["packets_lost"] == 110
    assert stored["problems"] == ["packet loss"]
    assert 3.0 < stored["mos"] < 4.3
    async with ui.db() as session:
        row = await find_interaction(session, NODE, LINKEDID)
    assert row is not None
    assert row.answered_at is not None  # the recorder's own write of the call, beside it


@pytest.mark.asyncio
async def test_a_colleagues_desk_cannot_report_on_alices_call(ui: Ui) -> None:
    heard: list[DomainEvent] = []
    ui.bus.listen((CallQualityReported,), heard.append)
    await _answered_by_alice(ui)
    bob = await ui.desk("bob")
    await bob.send_json(_report())
    refused = await next_of(bob, "error")
    assert refused["for"] == "call_quality"
    assert "not yours" in refused["message"]
    assert heard == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"packet_loss_pct": 140.0}, "call quality refused: packet_loss_pct: "),
        ({"seconds": "42"}, "call quality refused: seconds: "),
        ({"linkedid": "x y"}, "call quality refused: linkedid: "),
        ({"jitter": 3.0}, "call quality refused: jitter: "),
    ],
)
async def test_a_malformed_report_is_refused_naming_the_field(
    ui: Ui, changes: dict[str, Any], says: str
) -> None:
    heard: list[DomainEvent] = []
    ui.bus.listen((CallQualityReported,), heard.append)
    alice = await _answered_by_alice(ui)
    await alice.send_json(_report(**changes))
    refused = await next_of(alice, "error")
    assert refused["message"].startswith(says), refused
    assert heard == []
