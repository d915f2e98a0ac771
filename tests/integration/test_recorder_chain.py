"""The recorder writes ``CallEnded.chain`` into the CRM's interaction parties, through the
journal like every write: a database outage, a restart and a replay lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.agent_figures import AgentSegments, agent_segments
from crm_core.interactions import find_interaction
from crm_core.models import InteractionParty
from cti_server.bus import MemoryBus
from cti_server.events import CallEnded
from cti_server.recorder.entries import InteractionUpdate
from cti_server.recorder.recorder import Recorder, interaction_update
from cti_server.recorder.spool import Spool
from tests.support.domain_events import answered, ended
from tests.support.replay import load, replay
from tests.support.ui import add_users
from tests.support.waiting import poll_until

Sessions = async_sessionmaker[AsyncSession]
TRANSFERS = Path(__file__).resolve().parents[1] / "data" / "ami_transfers"


def _chain_ended(linkedid: str, *hostile: str) -> CallEnded:
    """Answered by sim-1001, attended transfer to 1002 (a phone, no queue member), blind
    transfer by 1002 to 1003 (nobody in the CRM)."""
    call = ended(linkedid, "sim-1001")
    assert call.answered_at is not None
    start = call.answered_at

    def segment(n: int, extension: str, agent: str, how: str, by: str, seconds: float) -> Any:
        begun = start + timedelta(seconds=sum((130, 65, 20)[:n]))
        return {
            "party": f"PJSIP/{extension}",
            "extension": extension,
            "agent": agent,
            "how": how,
            "by": by,
            "started_at": begun.isoformat(),
            "ended_at": (begun + timedelta(seconds=seconds)).isoformat(),
            "seconds": seconds,
        }

    chain = [
        segment(0, "1001", "sim-1001", "answer", "", 130),
        segment(1, "1002", "", "attended", "PJSIP/1001", 65),
        segment(2, "1003", "".join(hostile), "blind", "PJSIP/1002", 20),
    ]
    return dataclasses.replace(call, chain=chain, hung_up_by="caller")


class Outage:
    """Sessions of the CRM that refuse to connect while ``down`` is set."""

    def __init__(self, crm: Sessions) -> None:
        self.crm = crm
        self.down = True
        self.refused = 0

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]:
        if self.down:
            self.refused += 1
            raise OperationalError("connect", {}, ConnectionRefusedError("database is down"))
        return self.crm()


@asynccontextmanager
async def running(recorder: Recorder) -> AsyncIterator[Recorder]:
    task = asyncio.create_task(recorder.run())
    try:
        yield recorder
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _parties(crm: Sessions, linkedid: str, node: str = "pbx1") -> list[InteractionParty]:
    async with crm() as s:
        row = await find_interaction(s, node, linkedid)
        if row is None:
            return []
        return list(
            await s.scalars(
                select(InteractionParty)
                .where(InteractionParty.interaction_id == row.id)
                .order_by(InteractionParty.position)
            )
        )


@pytest.mark.asyncio
async def test_a_chain_held_through_an_outage_and_a_restart_is_written_once(
    crm: Sessions, tmp_path: Path
) -> None:
    ids = await add_users(crm, ("lina", "agent", "1001"), ("wangwei", "agent", "1002"))
    journal = tmp_path / "spool.jsonl"
    outage = Outage(crm)
    bus = MemoryBus()
    first = Recorder(bus, outage, Spool(journal), region="CN", retry_seconds=0.05)  # type: ignore[arg-type]
    async with running(first):
        bus.publish(answered("x1", "sim-1001"))
        bus.publish(_chain_ended("x1"))
        await poll_until(lambda: _true(outage.refused >= 2), 10, what="writes refused")
        assert first.spooled == 2
        assert first.status()["ok"] is False
    # the server stops during the outage; the next one starts from the journal, database back
    bus = MemoryBus()
    second = Recorder(bus, crm, Spool(journal), region="CN")
    assert second.spooled == 2
    async with running(second):
        parties = await poll_until(lambda: _parties(crm, "x1"), 10, what="the chain in the CRM")
        assert second.status() == {"ok": True, "written": 2, "spooled": 0, "failed_writes": 0}
        assert [(p.position, p.extension, p.how, p.by_party) for p in parties] == [
            (0, "1001", "answer", None),
            (1, "1002", "attended", "PJSIP/1001"),
            (2, "1003", "blind", "PJSIP/1002"),
        ]
        # users found by extension (1002 is no queue member), the unknown 1003 left empty
        assert [p.agent_id for p in parties] == [ids["lina"], ids["wangwei"], None]
        assert [p.seconds for p in parties] == [130, 65, 20]
        assert parties[1].started_at == parties[0].ended_at

        bus.publish(_chain_ended("x1"))  # the same CallEnded again (a resync's report)
        await poll_until(lambda: _true(second.written == 3), 10, what="the replay written")
    assert len(await _parties(crm, "x1")) == 3
    async with crm() as s:
        row = await find_interaction(s, "pbx1", "x1")
    assert row is not None
    assert (row.agent_name, row.agent_id) == ("sim-1001", ids["lina"])  # the first answerer
    assert row.ended_by == "caller"


@pytest.mark.asyncio
async def test_a_chain_the_crm_refuses_leaves_the_call_written_without_it(
    crm: Sessions, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    call = _chain_ended("x2")
    broken = dataclasses.replace(call, chain=[{**call.chain[0], "how": "teleport"}])
    bus = MemoryBus()
    with caplog.at_level(logging.WARNING, logger="cti_server.recorder.recorder"):
        async with running(Recorder(bus, crm, Spool(tmp_path / "spool.jsonl"), region="CN")):
            bus.publish(broken)

            async def written() -> bool:
                async with crm() as s:
                    row = await find_interaction(s, "pbx1", "x2")
                    return row is not None and row.ended_at is not None

            await poll_until(written, 10, what="the call in the CRM")
    assert await _parties(crm, "x2") == []
    assert "the chain of interaction x2 refused" in caplog.text


def test_the_chain_is_journalled_in_the_crms_words_and_cleaned() -> None:
    """Characters text may not hold become spaces, lengths are bounded, markup stays (it is
    escaped where shown)."""
    entry = interaction_update(_chain_ended("x3", "<b>Li\u202eNa</b>", "\u200b", "x" * 200))
    assert isinstance(entry, InteractionUpdate)
    update = entry.fields
    last = update["parties"][2]
    assert last["agent_name"] == ("<b>Li Na</b> " + "x" * 200)[:80]
    assert update["parties"][0] == {
        "party": "PJSIP/1001",
        "extension": "1001",
        "agent_name": "sim-1001",
        "how": "answer",
        "by_party": None,
        "started_at": _chain_ended("x3").chain[0]["started_at"],
        "ended_at": _chain_ended("x3").chain[0]["ended_at"],
        "seconds": 130,
    }


@pytest.mark.asyncio
async def test_a_recorded_transfer_back_to_the_first_agent_reaches_the_crm_and_the_figures(
    crm: Sessions, tmp_path: Path
) -> None:
    """Real Asterisk traffic (A → B by blind transfer, B → A): the tracker's events through the
    recorder give three parties, and A handled one call with both of A's segments' talk."""
    ids = await add_users(crm, ("anna", "agent", "2211"), ("bo", "agent", "2212"))
    _, events = replay(load(TRANSFERS / "back_to_first_agent.json"))
    (call,) = [e for e in events if isinstance(e, CallEnded) and e.chain]
    bus = MemoryBus()
    async with running(Recorder(bus, crm, Spool(tmp_path / "spool.jsonl"), region="CN")):
        for event in events:
            bus.publish(event)
        parties = await poll_until(
            lambda: _parties(crm, call.linkedid, node=call.node), 10, what="the chain"
        )
    assert [(p.extension, p.how, p.by_party, p.agent_id) for p in parties] == [
        ("2211", "answer", None, ids["anna"]),
        ("2212", "blind", "PJSIP/2211", ids["bo"]),
        ("2211", "blind", "PJSIP/2212", ids["anna"]),
    ]
    assert [p.seconds for p in parties] == [c["seconds"] for c in call.chain]
    async with crm() as s:
        row = await find_interaction(s, call.node, call.linkedid)
        assert row is not None
        assert row.agent_id == ids["anna"]  # the first answerer
        day = parties[0].started_at.replace(hour=0, minute=0, second=0, microsecond=0)
        figures = await agent_segments(s, day, day + timedelta(days=1))
    first, second, back = (c["seconds"] for c in call.chain)
    assert figures == [
        AgentSegments(ids["anna"], "anna", "2211", 1, first + back),
        AgentSegments(ids["bo"], "bo", "2212", 1, second),
    ]


async def _true(value: bool) -> bool:
    return value


@pytest.mark.asyncio
async def test_a_pickers_own_call_leaves_no_interaction_behind(
    crm: Sessions, tmp_path: Path
) -> None:
    """Real Asterisk traffic (a colleague keys **<ext> and picks up a ringing agent's call):
    the CRM keeps one interaction, answered by the picker, and none for the picker's own
    channel (it was no call of its own), though the recorder first wrote it as one."""
    ids = await add_users(crm, ("lin", "agent", "2171"), ("mo", "agent", "2172"))
    _, events = replay(load(TRANSFERS / "pickup_directed.json"))
    (merged,) = [e for e in events if isinstance(e, CallEnded) and e.outcome == "merged"]
    (call,) = [e for e in events if isinstance(e, CallEnded) and e.outcome == "answered"]
    bus = MemoryBus()

    async def _gone() -> bool:
        async with crm() as s:
            return await find_interaction(s, merged.node, merged.linkedid) is None

    async with running(Recorder(bus, crm, Spool(tmp_path / "spool.jsonl"), region="CN")):
        for event in events:
            if event is merged:  # the picker's channel was written as a call first
                await poll_until(
                    lambda: _exists(crm, merged.node, merged.linkedid), 10, what="picker row"
                )
            bus.publish(event)
        parties = await poll_until(
            lambda: _parties(crm, call.linkedid, node=call.node), 10, what="the chain"
        )
        await poll_until(_gone, 10, what="the picker's own call forgotten")
    assert [(p.extension, p.how, p.agent_id) for p in parties] == [("2172", "pickup", ids["mo"])]
    async with crm() as s:
        row = await find_interaction(s, call.node, call.linkedid)
        assert row is not None
        assert (row.agent_id, row.ended_by) == (ids["mo"], "caller")


async def _exists(crm: Sessions, node: str, linkedid: str) -> bool:
    async with crm() as s:
        return await find_interaction(s, node, linkedid) is not None
