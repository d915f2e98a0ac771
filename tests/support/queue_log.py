"""Asterisk's own account of queue calls (queue_log), to check ours against."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import Interaction

TERMINAL = {"COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "TRANSFER"}


@dataclass
class QueueLogCall:
    queue: str = ""
    agent: str = ""
    outcome: str = ""  # answered, abandoned
    hold: int = 0
    ended: bool = False
    number: str = ""  # the caller's number as the call entered the queue (ENTERQUEUE)
    ended_by: str = ""  # caller or agent: who hung up an answered call (COMPLETECALLER/-AGENT)
    talk: int = 0  # seconds from the agent's answer to the end (COMPLETE*)
    waited: int = 0  # seconds an abandoning caller waited (ABANDON)
    ended_at: int = 0  # epoch seconds of the last event (the end, once ended)


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
        data = [*parts[5:], "", "", ""]
        if event == "ENTERQUEUE":
            call.number = data[1]
        elif event == "CONNECT":
            call.outcome, call.agent, call.hold = "answered", parts[3], int(data[0] or 0)
        elif event == "ABANDON":
            call.outcome, call.waited = "abandoned", int(data[2] or 0)
        elif event in {"COMPLETECALLER", "COMPLETEAGENT"}:
            call.ended_by = "caller" if event == "COMPLETECALLER" else "agent"
            call.talk = int(data[1] or 0)
        if event in TERMINAL:
            call.ended = True
        call.ended_at = int(parts[0])
    return calls


def all_ended(path: Path, callids: set[str]) -> dict[str, QueueLogCall] | None:
    calls = read_queue_log(path, callids)
    done = len(calls) == len(callids) and all(c.ended for c in calls.values())
    return calls if done else None


async def recorded_calls(
    sessions: async_sessionmaker[AsyncSession], callids: set[str]
) -> dict[str, Interaction] | None:
    """The CRM's interactions for these calls once every one of them has ended, else None."""
    async with sessions() as session:
        rows = (await session.scalars(select(Interaction))).all()
    found = {r.external_key.split(":", 1)[1]: r for r in rows}
    ready = callids <= found.keys() and all(found[c].ended_at for c in callids)
    return found if ready else None


def assert_recorded_as_asterisk_saw(
    recorded: dict[str, Interaction],
    truth: dict[str, QueueLogCall],
    numbers: list[str],
    hold_tolerance: float = 2.0,
    missed_queue_joins: bool = False,
    ended_unseen: Collection[str] = (),
) -> None:
    """``missed_queue_joins``: the server was down when some callers joined the queue, so
    their queue time may be unknown (never wrong). ``ended_unseen``: calls that ended while no
    server listened; closed after the restart and marked so, with what was seen before right
    and what was not seen left empty."""
    for callid, real in truth.items():
        row = recorded[callid]
        if row.routing.get("end_unseen"):
            # (a call ending just as the server died may yet have been seen ending)
            assert callid in ended_unseen, f"{callid} was seen ending, yet closed as unseen"
            assert row.ended_at is not None, callid
            assert row.answered_at is None or real.outcome == "answered", f"{callid}: {real}"
            assert row.kind != "abandoned" or real.outcome == "abandoned", f"{callid}: {real}"
            continue
        assert row.queue == real.queue == "support"
        assert row.caller_number in numbers
        assert row.arrived_at is not None
        assert row.ended_at is not None
        if row.queued_at is None:
            assert missed_queue_joins, callid
        else:
            assert row.arrived_at <= row.queued_at <= row.ended_at
        if real.outcome == "answered":
            assert row.kind == "inbound_call", callid
            assert row.answered_at is not None, callid
            if row.queued_at is not None:
                waited = (row.answered_at - row.queued_at).total_seconds()
                assert abs(waited - real.hold) <= hold_tolerance, (waited, real.hold)
        else:
            assert row.kind == "abandoned", callid
            assert row.answered_at is None


def assert_each_call_as_asterisk_saw(
    recorded: Mapping[str, Interaction],
    truth: Mapping[str, QueueLogCall],
    number_of: Mapping[str, str],
    tolerance: float = 2.0,
) -> None:
    """Call by call: the caller's own number, when it ended, who hung up and how long the
    customer talked or waited, against queue_log (whole seconds, hence the ``tolerance``)."""
    for callid, real in truth.items():
        row = recorded[callid]
        assert real.number == number_of[callid], (callid, real)
        assert row.caller_number == number_of[callid], (callid, row.caller_number)
        assert row.ended_at is not None, callid
        ended = row.ended_at.timestamp()
        assert abs(ended - real.ended_at) <= tolerance, (callid, row.ended_at, real)
        if real.outcome == "answered":
            assert row.answered_at is not None, callid
            talked = (row.ended_at - row.answered_at).total_seconds()
            assert abs(talked - real.talk) <= tolerance, (callid, talked, real)
            assert row.ended_by == real.ended_by, (callid, row.ended_by, real)
        else:
            assert row.queued_at is not None, callid
            waited = (row.ended_at - row.queued_at).total_seconds()
            assert abs(waited - real.waited) <= tolerance, (callid, waited, real)
