"""Plans from the CRM's own history, for the API, the supervisor's page and the wallboard.

The CRM's interactions of the ``weeks`` before the first day asked are read once and kept
``read_every`` seconds (a page, its form sent again, the wallboard's queues: one read); the
forecast and the Erlang sums run in a worker thread (Erlang A integrates numerically: a week
of quarter-hours is hundreds of integrals, too long for the event loop). A plan costs 0.1-0.6 s
of CPU: one is computed at a time (a burst of page loads cannot take every core from the calls),
and the same question on the same reading is answered again from memory.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time as clock_time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from cti_server.control.staffing import IntervalOut, PlanOut, PlanQuery, PlanRefused, WhatIfOut
from cti_server.ivr.calendar import CALENDAR_FILE, Calendar, load_calendar
from cti_server.staffing.confidence import check_confidence
from cti_server.staffing.crm_history import contacts_since
from cti_server.staffing.erlang import StaffingError
from cti_server.staffing.forecast import forecast
from cti_server.staffing.history import ALL_QUEUES, Contact, count
from cti_server.staffing.plan import Outcome, Row, staffing_for
from cti_server.staffing.targets import parse_target
from cti_server.staffing.whatif import Comparison, WhatIf, compare, patience_of

WEEKS = 4
READ_EVERY = 600.0
"""Seconds a read of the history serves: a plan learns from the days before the first day
asked, which change only as the recorder catches up."""
ANSWERS_KEPT = 64
"""Plans kept for the reading they were made from (pages, the API and the wallboard's queues)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Planner:
    """Answers :class:`~cti_server.control.staffing.PlanQuery` (``StaffingPlans``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        zone: ZoneInfo,
        calendar: Callable[[], Calendar] = Calendar,
        weeks: int = WEEKS,
        read_every: float = READ_EVERY,
        clock: Callable[[], datetime] = _now,
        confidence: float | None = None,
    ) -> None:
        """``confidence``: the one plans get when the question names none (None: on
        average); raises StaffingError when it is no probability."""
        self._engine = engine
        self._zone = zone
        self._calendar = calendar
        self._weeks = weeks
        self._read_every = read_every
        self._clock = clock
        self._confidence = check_confidence(confidence) if confidence is not None else None
        self._read: tuple[date, float, list[Contact]] | None = None
        self._reading = asyncio.Lock()
        self._planning = asyncio.Lock()
        self._answers: OrderedDict[tuple[PlanQuery, date, float], PlanOut] = OrderedDict()

    def today(self) -> date:
        return self._clock().astimezone(self._zone).date()

    async def plan(self, query: PlanQuery) -> PlanOut:
        """The plan, or :class:`PlanRefused` naming the parameter to change."""
        first = query.day or self.today()
        days = [first + timedelta(days=n) for n in range(query.days)]
        if query.confidence is None and self._confidence is not None:
            query = query.model_copy(update={"confidence": self._confidence})
        if query.on is not None and not query.asking:
            raise PlanRefused("on", "on says when a what-if applies: give scale or fewer too")
        if query.on is not None and query.on not in days:
            raise PlanRefused("on", f"{query.on} is not a day of the plan ({days[0]}..{days[-1]})")
        since = first - timedelta(weeks=self._weeks)
        read_at, contacts = await self._contacts(since)
        key = (query, first, read_at)
        async with self._planning:
            answer = self._answers.get(key)
            if answer is None:
                calendar = self._calendar()
                answer = await asyncio.to_thread(
                    _answer, query, days, since, contacts, calendar, self._zone
                )
                self._answers[key] = answer
                while len(self._answers) > ANSWERS_KEPT:
                    self._answers.popitem(last=False)
            self._answers.move_to_end(key)
            return answer

    async def _contacts(self, since: date) -> tuple[float, list[Contact]]:
        """The interactions from local midnight of ``since`` on, read again when older than
        ``read_every`` or from another day; with when they were read."""
        async with self._reading:
            read = self._read
            if (
                read is not None
                and read[0] == since
                and clock_time.monotonic() - read[1] < self._read_every
            ):
                return read[1], read[2]
            start = datetime.combine(since, datetime.min.time(), self._zone).astimezone(UTC)
            contacts = await contacts_since(self._engine, start, self._zone)
            self._read = (since, clock_time.monotonic(), contacts)
            return self._read[1], contacts


def _answer(  # noqa: PLR0917 - the worker thread's one call, its inputs in order
    query: PlanQuery,
    days: list[date],
    since: date,
    contacts: list[Contact],
    calendar: Calendar,
    zone: ZoneInfo,
) -> PlanOut:
    first, queue = days[0], query.queue
    before = [c for c in contacts if since <= c.arrived.date() < first]
    history = count(before, query.interval, days=(since, first - timedelta(days=1)))
    if queue != ALL_QUEUES and queue not in history.loads:
        raise PlanRefused(
            "queue",
            f"no call reached queue {queue!r} in the {len(history.days)} days before {first}: "
            f"have {[ALL_QUEUES, *history.queues]}",
        )
    try:
        target = parse_target(query.target)
    except StaffingError as exc:
        raise PlanRefused("target", str(exc)) from None
    patience = query.patience or patience_of(
        (c.waited_s, not c.answered) for c in before if queue in (ALL_QUEUES, c.queue)
    )
    staffing, error = staffing_for(
        target,
        patience,
        history,
        queue,
        calendar=calendar,
        confidence=query.confidence,
        shrinkage=query.shrinkage,
    )
    what_if = WhatIf(query.scale, query.fewer, query.from_, query.on)
    expected = forecast(history, days, calendar=calendar, queues=[queue])
    try:
        compared = compare(expected, queue, staffing, what_if)
    except StaffingError as exc:
        raise PlanRefused("target", str(exc)) from None
    hours = query.interval / 60
    return PlanOut(
        queue=queue,
        queues=[ALL_QUEUES, *history.queues],
        days=days,
        interval=query.interval,
        time_zone=str(zone),
        target=str(target),
        shrinkage=query.shrinkage,
        patience_s=round(patience, 1) if math.isfinite(patience) else None,
        history_first=history.days[0] if history.days else None,
        history_last=history.days[-1] if history.days else None,
        what_if=_words(what_if) if what_if.asked else None,
        intervals=_intervals(compared, zone, asked=what_if.asked),
        agent_hours_c=round(sum(r.erlang_c for r in compared.rows) * hours, 2),
        agent_hours_a=round(sum(r.erlang_a for r in compared.rows) * hours, 2),
        scheduled_hours_a=round(sum(r.scheduled_a for r in compared.rows) * hours, 2),
        what_if_missed=sum(not o.met for o in compared.after) if what_if.asked else None,
        confidence=query.confidence,
        forecast_error=round(error.spread, 3) if error else None,
    )


def _intervals(compared: Comparison, zone: ZoneInfo, *, asked: bool) -> list[IntervalOut]:
    return [
        IntervalOut(
            start=row.start.replace(tzinfo=zone),
            offered=round(row.offered, 2),
            handle_s=round(row.handle_s, 1),
            erlang_c=row.erlang_c,
            erlang_a=row.erlang_a,
            scheduled_c=row.scheduled_c,
            scheduled_a=row.scheduled_a,
            service_level=round(now.service_level, 4),
            abandon_rate=round(now.abandon_rate, 4),
            asa_s=_seconds(now.asa_s),
            met=now.met,
            chance=round(now.chance, 4) if now.chance is not None else None,
            what_if=_what_if(new, later) if asked else None,
        )
        for row, now, new, later in zip(
            compared.rows, compared.base, compared.changed, compared.after, strict=True
        )
    ]


def _what_if(row: Row, outcome: Outcome) -> WhatIfOut:
    return WhatIfOut(
        offered=round(row.offered, 2),
        agents=outcome.agents,
        erlang_a=row.erlang_a,
        service_level=round(outcome.service_level, 4),
        abandon_rate=round(outcome.abandon_rate, 4),
        asa_s=_seconds(outcome.asa_s),
        met=outcome.met,
    )


def _seconds(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None


def _words(what_if: WhatIf) -> str:
    """E.g. ``3 agents fewer from 14:00, calls times 2 on 2026-12-14``."""
    parts = []
    if what_if.fewer is not None:
        agents = "agent" if what_if.fewer == 1 else "agents"
        parts.append(f"{what_if.fewer} {agents} fewer from {what_if.since:%H:%M}")
    if what_if.scale is not None:
        parts.append(f"calls times {what_if.scale:g}")
    when = f" on {what_if.on}" if what_if.on is not None else ""
    return ", ".join(parts) + when


def crm_planner(
    engine: AsyncEngine, *, flows_dir: Path, time_zone: str, confidence: float | None = None
) -> Planner:
    """The server's planner: the CRM's interactions at the centre's local times, holidays and
    closed hours from the IVR's ``calendar.yaml`` (read again for each plan: an edit counts);
    ``confidence`` the plans' unless a question names one."""
    return Planner(
        engine,
        zone=ZoneInfo(time_zone),
        calendar=functools.partial(load_calendar, flows_dir / CALENDAR_FILE),
        confidence=confidence,
    )
