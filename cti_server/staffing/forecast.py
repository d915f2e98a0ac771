"""Offered calls and handle time per queue and interval, for the days ahead.

The method, chosen by measurement on the bank's August 1999 traffic (``bench/staffing.py``:
fitted on two weeks, chosen on the third, measured on the fourth):

* **profile** (the default): a day's total is the same weekday's a week before (the recent
  level: the bank's volume fell by a third over the month, and averaging older weeks in, with
  weights 1, 0.5, 0.25 or 1, 0.3, 0.09, did worse on the validation week), spread over the day
  by that weekday's intraday shape, pooled over up to four weeks and smoothed over the
  neighbouring intervals (a half-hour's count of one queue is a few calls: the shape of one
  week alone is mostly noise). Weekly seasonality is the weekday, daily seasonality the shape.
  On the validation week the profile's MAPE (intervals of 10 calls or more, every queue
  together) was 33.7 % against the seasonal-naive's 39.3 %.
* **seasonal-naive**: the same interval a week before; the baseline every forecast must beat.

Holt-Winters/ETS (statsmodels 0.15 ``ExponentialSmoothing``, a 336-half-hour season, measured
the same way, every queue together, MAPE over intervals of 10 calls or more): additive trend
and multiplicative season did best of its four variants on the validation week (22.6 %,
against the profile's 33.7 %) and worse than the profile on the fourth week (28.0 % against
23.8 %); the others gave 25.5-59.9 % and 36.5-43.4 %, and every fit stopped without converging:
with half-hours a week is a season of 336 states, and three weeks give each of them three
observations. Not worth statsmodels, pandas and patsy at run time; the profile is that
model's seasonal part with the level taken from last week, in a few lines.

Holidays in the calendar (``ivr_flows/calendar.yaml``) and hours it has closed are
forecast at zero, and holidays in the history are left out of the fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from cti_server.ivr.calendar import Calendar
from cti_server.staffing.erlang import StaffingError
from cti_server.staffing.history import History, Load

Method = Literal["profile", "seasonal-naive"]
METHODS: tuple[Method, ...] = ("profile", "seasonal-naive")

WEEKS_BACK = 4
LEVEL_DECAY = 0.0
"""Weight of each week further back in a day's total (0: last week's only)."""
SHAPE_DECAY = 1.0
"""Weight of each week further back in the intraday shape."""
SMOOTHING = (0.25, 0.5, 0.25)
"""The intraday shape, averaged with its neighbouring intervals."""
DEFAULT_HANDLE_S = 180.0
"""A queue nobody was ever answered in: three minutes, the usual planning figure."""
HANDLE_PRIOR_CALLS = 10
"""A slot's mean handle time is pulled towards the queue's as if it had this many calls more."""


@dataclass(frozen=True, slots=True)
class Expected:
    offered: float
    handle_s: float
    """Mean handle time of a call; the queue's mean when the slot had no answered call."""


@dataclass(frozen=True, slots=True)
class Forecast:
    method: Method
    minutes: int
    days: tuple[date, ...]
    queues: dict[str, dict[datetime, Expected]]

    def offered(self, queue: str, start: datetime) -> float:
        expected = self.queues.get(queue, {}).get(start)
        return expected.offered if expected else 0.0


def forecast(
    history: History,
    days: Iterable[date],
    *,
    method: Method = "profile",
    calendar: Calendar | None = None,
    queues: Iterable[str] | None = None,
    level_decay: float = LEVEL_DECAY,
    shape_decay: float = SHAPE_DECAY,
    smoothing: tuple[float, ...] = SMOOTHING,
) -> Forecast:
    """Expected offered calls and handle time of ``queues`` (default: every queue and
    ``all``) on each of ``days``, learning from ``history`` before each day."""
    if method not in METHODS:
        raise StaffingError(f"forecast method {method!r}: choose one of {list(METHODS)}")
    ahead = tuple(sorted(days))
    calendar = calendar or Calendar()
    holidays = set(calendar.holidays)
    names = list(queues) if queues is not None else list(history.loads)
    result: dict[str, dict[datetime, Expected]] = {}
    for queue in names:
        series = history.loads.get(queue, {})
        mean_handle = _mean_handle(series.values())
        result[queue] = {}
        for day in ahead:
            past = [
                day - timedelta(weeks=k)
                for k in range(1, WEEKS_BACK + 1)
                if day - timedelta(weeks=k) in history.days
                and day - timedelta(weeks=k) not in holidays
            ]
            slots = history.slots(day)
            if method == "seasonal-naive":
                counts = _seasonal_naive(series, slots, past[:1])
            else:
                counts = _profile(series, slots, past, level_decay, shape_decay, smoothing)
            handles = _handles(series, slots, past, mean_handle)
            for start, offered, handle in zip(slots, counts, handles, strict=True):
                closed = day in holidays or not _open(calendar, start)
                result[queue][start] = Expected(0.0 if closed else offered, handle)
    return Forecast(method, history.minutes, ahead, result)


def _seasonal_naive(
    series: dict[datetime, Load], slots: list[datetime], past: list[date]
) -> list[float]:
    if not past:
        return [0.0] * len(slots)
    shift = slots[0].date() - past[0]
    return [float(_offered(series, start - shift)) for start in slots]


def _profile(  # noqa: PLR0917 - one private helper of forecast(), its arguments in order
    series: dict[datetime, Load],
    slots: list[datetime],
    past: list[date],
    level_decay: float,
    shape_decay: float,
    smoothing: tuple[float, ...],
) -> list[float]:
    if not past:
        return [0.0] * len(slots)
    day = slots[0].date()
    level_weights = [level_decay**n for n in range(len(past))]
    totals = []
    shape = [0.0] * len(slots)
    for n, before in enumerate(past):
        shift = day - before
        counts = [_offered(series, start - shift) for start in slots]
        totals.append(sum(counts))
        for index, calls in enumerate(counts):
            shape[index] += shape_decay**n * calls
    level = sum(w * t for w, t in zip(level_weights, totals, strict=True)) / sum(level_weights)
    shape = _smooth(shape, smoothing)
    mass = sum(shape)
    return [level * s / mass if mass else 0.0 for s in shape]


def _smooth(values: list[float], kernel: tuple[float, ...]) -> list[float]:
    """Moving weighted average; at the ends the kernel is renormalised. Zeros stay zero, so
    that closed hours do not leak into the open ones' neighbours."""
    half = len(kernel) // 2
    out = []
    for index, value in enumerate(values):
        if value == 0:
            out.append(0.0)
            continue
        total = weight = 0.0
        for offset, k in enumerate(kernel, start=-half):
            j = index + offset
            if 0 <= j < len(values):
                total += k * values[j]
                weight += k
        out.append(total / weight)
    return out


def _offered(series: dict[datetime, Load], start: datetime) -> int:
    load = series.get(start)
    return load.offered if load else 0


def _handles(
    series: dict[datetime, Load], slots: list[datetime], past: list[date], mean: float
) -> list[float]:
    out = []
    for start in slots:
        total = calls = 0.0
        for before in past:
            load = series.get(start - (start.date() - before))
            if load is not None:
                total += load.handle_total_s
                calls += load.answered
        out.append((total + HANDLE_PRIOR_CALLS * mean) / (calls + HANDLE_PRIOR_CALLS))
    return out


def _mean_handle(loads: Iterable[Load]) -> float:
    whole = sum(loads, Load())
    return whole.handle_s or DEFAULT_HANDLE_S


def _open(calendar: Calendar, start: datetime) -> bool:
    local = start.replace(tzinfo=ZoneInfo(calendar.timezone))
    return calendar.attributes(local)["business_hours"] == "yes"


@dataclass(frozen=True, slots=True)
class Accuracy:
    """How a forecast of offered calls compares with what came, over non-empty intervals."""

    mape: float
    """Mean absolute percentage error over intervals with at least ``min_actual`` calls."""
    wape: float
    """Sum of absolute errors over the sum of actual calls (every interval)."""
    intervals: int
    """Intervals in the MAPE."""
    actual: int
    predicted: float


def accuracy(
    predicted: Callable[[datetime], float],
    actual: History,
    queue: str,
    days: Iterable[date],
    *,
    min_actual: int = 1,
) -> Accuracy:
    """``predicted`` (offered per interval start) against ``actual`` on ``days``.

    Intervals with fewer than ``min_actual`` calls are left out of the MAPE (a percentage of
    zero is undefined, and of one call a poor guide); the WAPE counts them all.
    """
    errors: list[float] = []
    absolute = total = forecast_total = 0.0
    for day in days:
        for start in actual.slots(day):
            real = actual.load(queue, start).offered
            guess = predicted(start)
            absolute += abs(guess - real)
            total += real
            forecast_total += guess
            if real >= min_actual and real > 0:
                errors.append(abs(guess - real) / real)
    return Accuracy(
        mape=sum(errors) / len(errors) if errors else float("nan"),
        wape=absolute / total if total else float("nan"),
        intervals=len(errors),
        actual=int(total),
        predicted=forecast_total,
    )
