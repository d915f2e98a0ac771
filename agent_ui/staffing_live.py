"""The wallboard's look ahead: per queue, for the current and the next interval, the calls
forecast beside those offered so far, the agents the forecast needs (Erlang A, for the
centre's target) beside those on the phones now, and a warning in words when the gap breaks
the target ("support: 3 agents short for 80% in 20 s from 14:30").

The look ahead never takes the board down: a plan that cannot be made (the CRM away, a
calendar that does not read) is logged and asked again a minute later.

Cheap by construction: the plan of each queue is asked once per interval (the first push of
the interval; the CRM away, asked again a minute later), the calls offered are counted from the
``CallQueued`` events the wallboard already follows, and the agents from the snapshot it sends.
Calls offered before the server started are not known: the count then says since when it runs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from cti_server.control.staffing import IntervalOut, PlanQuery, PlanRefused, StaffingPlans
from cti_server.events import AgentState

log = logging.getLogger(__name__)

MINUTES = 30
SHARE = 80
"""% of the callers to answer within the centre's service-level seconds (the usual 80/20)."""
RETRY_SECONDS = 60.0
ON_THE_PHONES = frozenset(
    {AgentState.AVAILABLE, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP}
)
"""Signed in and not paused (wrap-up is part of handling a call: the plan's handle time)."""


@dataclass(frozen=True, slots=True)
class _Planned:
    target: str
    rows: dict[datetime, IntervalOut]
    """By local interval start (naive), today's intervals."""


class LiveStaffing:
    """What the wallboard shows of the plan; ``refresh`` it before each push, feed it
    ``queued`` calls, read ``rows`` and ``warnings`` when drawing."""

    def __init__(
        self,
        plans: StaffingPlans,
        zone: ZoneInfo,
        *,
        within_s: int,
        started: datetime,
        minutes: int = MINUTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """The target: :data:`SHARE` % answered ``within_s``; ``started``: when this process
        began to count the calls offered."""
        self._plans = plans
        self._zone = zone
        self._target = f"{SHARE}/{within_s}"
        self._minutes = minutes
        self._monotonic = monotonic
        self._planned: dict[str, _Planned] = {}
        self._without_history: set[str] = set()
        self._planned_for: datetime | None = None
        self._retry_at = -float("inf")
        self._offered: Counter[tuple[str, datetime]] = Counter()
        self._counting_since = self._local(started)

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self._zone).replace(tzinfo=None)

    def _slot(self, moment: datetime) -> datetime:
        local = self._local(moment)
        minute = local.minute - local.minute % self._minutes
        return local.replace(minute=minute, second=0, microsecond=0)

    def due(self, now: datetime) -> bool:
        """Whether the plans are to be asked now (a new interval, no failure a moment ago):
        only then need the caller gather the queues for :meth:`refresh`."""
        return self._slot(now) != self._planned_for and self._monotonic() >= self._retry_at

    async def refresh(self, now: datetime, queues: Iterable[str]) -> None:
        """Ask the plan of each queue when the interval changed (or of a queue not asked
        yet); one that cannot be asked (the CRM away) is asked again ``RETRY_SECONDS`` later,
        the day's plans asked before still shown meanwhile."""
        slot = self._slot(now)
        if slot.date() != (self._planned_for or slot).date():
            self._planned, self._without_history = {}, set()
        wanted = set(queues) - self._without_history
        ask = wanted if slot != self._planned_for else wanted - set(self._planned)
        if not ask and slot == self._planned_for:
            return
        if self._monotonic() < self._retry_at:
            return
        planned: dict[str, _Planned] = {}
        for queue in sorted(ask):
            query = PlanQuery(
                queue=queue, day=slot.date(), target=self._target, interval=self._minutes
            )
            try:
                plan = await self._plans.plan(query)
            except PlanRefused:
                self._without_history.add(queue)  # a queue the CRM has no call of: no forecast
                continue
            except (SQLAlchemyError, OSError, ValueError) as exc:  # ValueError: the calendar
                log.warning("no staffing plan for the wallboard: %s", exc)
                self._retry_at = self._monotonic() + RETRY_SECONDS
                return
            rows = {self._local(row.start): row for row in plan.intervals}
            planned[queue] = _Planned(plan.target, rows)
        self._planned = {q: p for q, p in {**self._planned, **planned}.items() if q in wanted}
        self._planned_for = slot
        for key in [key for key in self._offered if key[1] < slot]:
            del self._offered[key]

    def queued(self, queue: str, at: datetime) -> None:
        """A call offered to ``queue`` at ``at`` (a ``CallQueued``)."""
        self._offered[queue, self._slot(at)] += 1

    def rows(
        self, now: datetime, agents: Sequence[Mapping[str, Any]], *, routing: bool
    ) -> list[dict[str, Any]]:
        """Per queue planned: the current and next intervals, forecast beside now.

        ``agents`` as the wallboard shows them (``state`` with wrap-up told apart); with
        ``routing`` every agent on the phones may serve every queue, else a queue's members."""
        current = self._slot(now)
        ahead = current + timedelta(minutes=self._minutes)
        shown = []
        for queue, planned in sorted(self._planned.items()):
            on_phones = sum(
                1
                for agent in agents
                if agent["state"] in ON_THE_PHONES and (routing or queue in agent["queues"])
            )
            intervals = []
            for when, slot in (("now", current), ("next", ahead)):
                row = planned.rows.get(slot)
                if row is None:
                    continue
                intervals.append(
                    {
                        "when": when,
                        "start": f"{slot:%H:%M}",
                        "forecast": round(row.offered, 1),
                        "offered": self._offered[queue, slot] if when == "now" else None,
                        "needed": row.erlang_a,
                        "on_phones": on_phones,
                        "short": max(0, row.erlang_a - on_phones),
                    }
                )
            short = next((i for i in intervals if i["short"]), None)
            shown.append(
                {
                    "queue": queue,
                    "target": planned.target,
                    "intervals": intervals,
                    "counted_since": self._counted_since(current),
                    "warning": _warning(queue, planned.target, short) if short else "",
                }
            )
        return shown

    def _counted_since(self, current: datetime) -> str:
        """When the count of this interval began, if after its start ("" if from its start)."""
        since = self._counting_since
        return f"{since:%H:%M}" if since > current else ""


def _warning(queue: str, target: str, interval: Mapping[str, Any]) -> str:
    agents = "agent" if interval["short"] == 1 else "agents"
    when = "now" if interval["when"] == "now" else f"from {interval['start']}"
    return f"{queue}: {interval['short']} {agents} short for {target} {when}"
