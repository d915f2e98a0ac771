"""Real Asterisk, many calls at once: the tracker and the recorder against Asterisk's queue_log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction
from cti_server.app import DATABASE, TRACKER
from cti_server.simulation import place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.waiting import EventLog, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

TERMINAL = {"COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "TRANSFER"}


@dataclass
class QueueLogCall:
    queue: str = ""
    agent: str = ""
    outcome: str = ""  # answered, abandoned
    hold: int = 0
    ended: bool = False


def read_queue_log(path: Path, callids: set[str]) -> dict[str, QueueLogCall]:
    """Asterisk's own account: time|callid|queue|agent|event|data1|data2|..."""
    calls: dict[str, QueueLogCall] = {}
    if not path.exists():
        return calls
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("|")
        if len(parts) < 5 or parts[1] not in callids:
            continue
        call = calls.setdefault(parts[1], QueueLogCall())
        call.queue = parts[2]
        event = parts[4]
        if event == "CONNECT":
            call.outcome, call.agent, call.hold = "answered", parts[3], int(parts[5] or 0)
        elif event == "ABANDON":
            call.outcome = "abandoned"
        if event in TERMINAL:
            call.ended = True
    return calls


@pytest.mark.asyncio
async def test_twenty_calls_five_agents_some_abandon_all_recorded_as_asterisk_saw_them(
    asterisk_node: AsteriskNode, cti_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    client, _ = ami
    settings = asterisk_node.settings
    agents = [f"20{n:02d}" for n in range(1, 6)]
    numbers = [f"+86138{n:08d}" for n in range(20)]
    async with sim_agents(client, "support", agents):
        placed = await asyncio.gather(*(
            place_customer_call(
                client, context=settings.dialplan.inbound_context, number=number,
                name=f"Caller {n}", patience=2 if n % 4 == 3 else 40,
            )
            for n, number in enumerate(numbers)
        ))
        callids = {call.uniqueid for call in placed}
        queue_log = asterisk_node.instance.log_dir / "queue_log"

        async def _asterisk_done() -> dict[str, QueueLogCall] | None:
            calls = read_queue_log(queue_log, callids)
            done = len(calls) == len(callids) and all(c.ended for c in calls.values())
            return calls if done else None

        truth = await poll_until(_asterisk_done, 120, interval=0.5, what="all calls ended")

    sessions = async_sessionmaker(cti_app[DATABASE], expire_on_commit=False)

    async def _recorded() -> dict[str, Interaction] | None:
        async with sessions() as session:
            rows = (await session.scalars(select(Interaction))).all()
        found = {r.external_key.split(":", 1)[1]: r for r in rows}
        ready = callids <= found.keys() and all(found[c].ended_at for c in callids)
        return found if ready else None

    recorded = await poll_until(_recorded, 30, interval=0.2, what="all calls in the CRM")
    assert {t.outcome for t in truth.values()} == {"answered", "abandoned"}, truth
    for callid in callids:
        row, real = recorded[callid], truth[callid]
        assert row.queue == real.queue == "support"
        assert row.caller_number in numbers
        assert row.arrived_at is not None
        assert row.queued_at is not None
        assert row.ended_at is not None
        assert row.arrived_at <= row.queued_at <= row.ended_at
        if real.outcome == "answered":
            assert row.kind == "inbound_call", callid
            assert row.agent_name == real.agent
            assert row.answered_at is not None
            waited = (row.answered_at - row.queued_at).total_seconds()
            assert abs(waited - real.hold) <= 2, (waited, real.hold)
        else:
            assert row.kind == "abandoned", callid
            assert row.answered_at is None
    tracker = cti_app[TRACKER]
    assert not [c for c in tracker.calls.values() if c.linkedid in callids]
    (stats,) = [q for q in tracker.queues.values() if q.name == "support"]
    answered = sum(1 for t in truth.values() if t.outcome == "answered")
    assert stats.answered >= answered
