"""Per interval: the forecast, the agents Erlang C and Erlang A need, and what-ifs.

A plan row says, for one queue and interval, what is expected (calls, handle time plus
after-call work), how many agents each model puts on the phones for the target, and how many
to schedule after shrinkage. A what-if changes the forecast (``scale``: a mailing doubles
Monday's calls) or the agents (``fewer``: four out from 14:00) and says what the queue then
does under Erlang A: service level, abandon rate, ASA. Plain data in, plain data out: the CLI,
the API and the wallboard share it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from cti_server.staffing.confidence import (
    ForecastError,
    Interval,
    agents_for,
    check_confidence,
    forecast_error,
    meet_probability,
)
from cti_server.staffing.erlang import Queue, StaffingError
from cti_server.staffing.forecast import Forecast
from cti_server.staffing.targets import (
    AverageSpeedOfAnswer,
    ServiceLevel,
    Target,
    agents_needed,
    scheduled,
)

if TYPE_CHECKING:
    from cti_server.ivr.calendar import Calendar
    from cti_server.staffing.history import History


@dataclass(frozen=True, slots=True)
class Staffing:
    """How agents are counted: the target, the callers' patience, the time around calls."""

    target: Target
    patience_s: float
    """Mean patience for Erlang A (:func:`cti_server.staffing.patience.fit_exponential`);
    infinite (nobody ever hung up) makes Erlang A Erlang C."""
    shrinkage: float = 0.0
    wrap_up_s: float = 0.0
    """After-call work per call, added to the handle time: the agent is not free before."""
    max_occupancy: float | None = None
    confidence: float | None = None
    """Staff each interval to meet the target with this probability (None: on average, the
    models' own answer): :mod:`cti_server.staffing.confidence`."""
    dispersion: float = 0.0
    """The forecast's error beyond Poisson's (``φ``,
    :func:`~cti_server.staffing.confidence.forecast_error`); with ``confidence`` only."""


def staffing_for(
    target: Target,
    patience_s: float,
    history: History,
    queue: str,
    *,
    calendar: Calendar,
    confidence: float | None = None,
    shrinkage: float = 0.0,
    wrap_up_s: float = 0.0,
) -> tuple[Staffing, ForecastError | None]:
    """The rules a plan counts agents by, for the CLI and the API alike. With a confidence, the
    forecast's error is fitted from the history first (every day forecast again, so only when
    a confidence is asked); it is returned for the plan to show."""
    error = forecast_error(history, queue, calendar=calendar) if confidence is not None else None
    rules = Staffing(
        target,
        patience_s,
        shrinkage=shrinkage,
        wrap_up_s=wrap_up_s,
        confidence=confidence,
        dispersion=error.dispersion if error else 0.0,
    )
    return rules, error


@dataclass(frozen=True, slots=True)
class Row:
    queue: str
    start: datetime
    offered: float
    handle_s: float
    """Handle time plus after-call work."""
    erlang_c: int
    erlang_a: int
    scheduled_c: int
    scheduled_a: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What Erlang A says a queue does in one interval with ``agents`` on the phones."""

    start: datetime
    offered: float
    agents: int
    service_level: float
    """Share answered within the target's threshold (20 s if the target is not one)."""
    abandon_rate: float
    asa_s: float
    met: bool
    """Whether the staffing's target is met (an interval without calls always meets it)."""
    chance: float | None = None
    """With a confidence: the probability that the interval meets the target with these
    agents, the forecast's error and the callers' scatter counted (an ASA target: None)."""


def plan(forecast: Forecast, queue: str, staffing: Staffing) -> list[Row]:
    """One row per interval of ``forecast`` for ``queue``."""
    expected = forecast.queues.get(queue)
    if expected is None:
        raise StaffingError(f"no forecast for queue {queue!r}: have {sorted(forecast.queues)}")
    seconds = forecast.minutes * 60.0
    patience = staffing.patience_s if math.isfinite(staffing.patience_s) else None
    if staffing.confidence is not None:
        check_confidence(staffing.confidence)
    rows = []
    margins = (0, 0)  # the last interval's margin: the next one's is much the same
    for start, one in sorted(expected.items()):
        rate, handle = one.offered / seconds, one.handle_s + staffing.wrap_up_s
        kwargs = {"max_occupancy": staffing.max_occupancy}
        needed_c = agents_needed(rate, handle, staffing.target, **kwargs)
        needed_a = agents_needed(rate, handle, staffing.target, patience_s=patience, **kwargs)
        if staffing.confidence is not None and one.offered > 0:
            spread = staffing.dispersion
            confident_c = _confident(
                staffing,
                Interval(one.offered, handle, seconds, None, spread),
                guess=needed_c + margins[0],
            )
            confident_a = _confident(
                staffing,
                Interval(one.offered, handle, seconds, patience, spread),
                guess=needed_a + margins[1],
            )
            margins = (confident_c - needed_c, confident_a - needed_a)
            needed_c, needed_a = confident_c, confident_a
        rows.append(
            Row(
                queue=queue,
                start=start,
                offered=one.offered,
                handle_s=handle,
                erlang_c=needed_c,
                erlang_a=needed_a,
                scheduled_c=scheduled(needed_c, staffing.shrinkage),
                scheduled_a=scheduled(needed_a, staffing.shrinkage),
            )
        )
    return rows


def _confident(staffing: Staffing, interval: Interval, *, guess: int) -> int:
    """The agents that meet the target with the staffing's confidence (searched from
    ``guess``: the search is exact from anywhere, and quick from near the answer)."""
    assert staffing.confidence is not None
    least = 0
    if staffing.max_occupancy:
        load = interval.offered / interval.seconds * interval.handle_s
        least = math.ceil(load / staffing.max_occupancy)
    return agents_for(staffing.confidence, interval, staffing.target, start=guess, least=least)


def outcomes(
    rows: Iterable[Row], agents: Mapping[datetime, int], staffing: Staffing, minutes: int
) -> list[Outcome]:
    """What each interval of ``rows`` does with ``agents[start]`` on the phones (Erlang A)."""
    threshold = staffing.target.within_s if isinstance(staffing.target, ServiceLevel) else 20.0
    seconds = minutes * 60.0
    result = []
    for row in rows:
        n = max(0, agents.get(row.start, 0))
        patience = staffing.patience_s if math.isfinite(staffing.patience_s) else None
        queue = Queue(row.offered / seconds, row.handle_s, n, patience)
        result.append(
            Outcome(
                start=row.start,
                offered=row.offered,
                agents=n,
                service_level=queue.service_level(threshold),
                abandon_rate=queue.abandon_rate,
                asa_s=queue.asa,
                met=staffing.target.met(queue),
                chance=_chance(staffing, row, n, seconds, patience),
            )
        )
    return result


def _chance(
    staffing: Staffing, row: Row, agents: int, seconds: float, patience_s: float | None
) -> float | None:
    target = staffing.target
    if staffing.confidence is None or isinstance(target, AverageSpeedOfAnswer):
        return None
    interval = Interval(row.offered, row.handle_s, seconds, patience_s, staffing.dispersion)
    return meet_probability(agents, interval, target)


def scale(forecast: Forecast, factor: float, *, on: date | None = None) -> Forecast:
    """``forecast`` with the offered calls of day ``on`` (every day if None) times ``factor``."""
    if factor < 0:
        raise StaffingError(f"scale {factor}: expected a factor >= 0")
    if on is not None and on not in forecast.days:
        raise StaffingError(f"{on}: not a day of the forecast ({forecast.days[0]}..)")
    queues = {
        queue: {
            start: (
                replace(one, offered=one.offered * factor)
                if on is None or start.date() == on
                else one
            )
            for start, one in loads.items()
        }
        for queue, loads in forecast.queues.items()
    }
    return replace(forecast, queues=queues)


def fewer(
    agents: Mapping[datetime, int], count: int, *, since: time, on: date | None = None
) -> dict[datetime, int]:
    """``agents`` with ``count`` fewer from ``since`` (on day ``on``, or every day) onwards."""
    if count < 0:
        raise StaffingError(f"--fewer {count}: expected a number of agents >= 0")
    return {
        start: max(0, n - count)
        if start.time() >= since and (on is None or start.date() == on)
        else n
        for start, n in agents.items()
    }


def on_the_phones(rows: Iterable[Row], model: str = "erlang_a") -> dict[datetime, int]:
    """The agents each row puts on the phones under ``model`` (``erlang_a`` or ``erlang_c``)."""
    if model not in ("erlang_a", "erlang_c"):
        raise StaffingError(f"model {model!r}: erlang_a or erlang_c")
    return {row.start: row.erlang_a if model == "erlang_a" else row.erlang_c for row in rows}
