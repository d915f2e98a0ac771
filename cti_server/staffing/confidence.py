"""Staffing that meets the target in a chosen share of intervals, not only on average.

Erlang C and Erlang A staff an interval for its *expected* calls and give the target's
*expected* service level: met on average over many intervals, missed in a good share of them
one by one. Two things scatter an interval's outcome around that expectation, and a
workforce-management plan with a confidence ``p`` staffs each interval so that it meets the
target with probability ``p`` despite both:

* **the forecast's own error**: the calls that come are not the forecast. The count of an
  interval is taken as negative binomial with the forecast ``m`` as mean and variance
  ``m + φm²`` (Poisson arrivals at a rate that is itself the forecast times a gamma error of
  relative spread ``√φ``). ``φ`` is fitted by :func:`forecast_error` from the history: each
  day the history can forecast from an earlier week is forecast again as the plan would have
  forecast it, and the pooled moments of its errors give ``φ`` (the Poisson part, ``m``,
  taken out: a half-hour of 40 calls scatters by ±6 even when the forecast is right). One
  ``φ`` per queue: three weeks give each half-hour of the week two or three errors, too few
  for one of its own.
* **the few callers of an interval**: given ``N`` callers the share answered within the
  threshold is a binomial draw of ``N`` around the model's service level at that rate (40
  callers at 85 % give 75-95 %). The abandon rate likewise; an ASA target takes only the
  count's scatter.

``P(met | n agents) = Σ_N P(N) · P(Binomial(N, SL_n(N/T)) ≥ share·N)``, over every count
``N`` within :data:`SPREADS` standard deviations of the mean: the service level of each count
comes from :func:`~cti_server.staffing.erlang.service_levels` (Erlang A's integrals as
incomplete gamma functions, all counts in one array), the binomial tail from scipy. The
fewest ``n`` with ``P ≥ p`` is searched from the expected staffing up (or down, for ``p``
below about a half): about a millisecond an interval, a week of half-hours in a few tenths
of a second.

Measured by ``bench/staffing.py`` on the bank's August 1999 (fitted on 1-21 August, replayed
22-28 August through the routing simulator, Erlang A): 0.8 met the target in 172 of 208
half-hours (83 %), 0.9 in 182 (88 %), against 138 (66 %) for the expected staffing. A
caller's wait is not independent of the next one's (a busy spell keeps many waiting), which
the binomial understates; a wider scatter (a design effect) was tried on the third week
(fitted on 1-14 August), where the binomial already gave more than asked (93 % for 0.8, 95 %
for 0.9): none is applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from numpy.typing import NDArray
from scipy import special

from cti_server.ivr.calendar import Calendar
from cti_server.staffing.erlang import StaffingError, service_levels
from cti_server.staffing.forecast import Method, forecast
from cti_server.staffing.history import History
from cti_server.staffing.targets import (
    AbandonRate,
    AverageSpeedOfAnswer,
    ServiceLevel,
    Target,
    agents_needed,
)

SPREADS = 7.0
"""Standard deviations of the count kept either side of its mean."""
POINTS = 160
"""Counts the probability is summed over at most (beyond, neighbours are pooled)."""


def check_confidence(confidence: float) -> float:
    """``confidence`` if it is a probability strictly between 0 and 1, else StaffingError."""
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise StaffingError(
            f"confidence {confidence}: expected a probability above 0 and below 1 (e.g. 0.9)"
        )
    return float(confidence)


@dataclass(frozen=True, slots=True)
class ForecastError:
    """How far the forecast's counts fall from what comes, beyond Poisson's own scatter."""

    dispersion: float
    """``φ`` in Var(N) = m + φm²; 0 is a forecast right but for Poisson's scatter."""
    intervals: int
    """Forecast intervals (with calls expected) the fit saw."""
    days: int

    @property
    def spread(self) -> float:
        """Relative error of the forecast rate (coefficient of variation): √φ."""
        return math.sqrt(self.dispersion)


def forecast_error(
    history: History,
    queue: str,
    *,
    calendar: Calendar | None = None,
    method: Method = "profile",
) -> ForecastError:
    """``φ`` of ``queue``'s forecast, from forecasting again each day of ``history`` that has
    the same weekday a week before (from the days before it only), by moments:
    ``φ = Σ((y - m)² - m) / Σm²`` over intervals with calls expected, not below 0."""
    calendar = calendar or Calendar()
    holidays = set(calendar.holidays)
    known = set(history.days)
    excess = squares = 0.0
    intervals = days = 0
    for day in history.days:
        if day - timedelta(weeks=1) not in known or day in holidays:
            continue
        before = history.between(history.days[0], day - timedelta(days=1))
        guessed = forecast(before, [day], method=method, calendar=calendar, queues=[queue])
        seen = 0
        for start, expected in guessed.queues[queue].items():
            m = expected.offered
            if m <= 0:
                continue
            y = history.load(queue, start).offered
            excess += (y - m) ** 2 - m
            squares += m * m
            seen += 1
        intervals += seen
        days += seen > 0
    dispersion = max(0.0, excess / squares) if squares else 0.0
    return ForecastError(dispersion, intervals, days)


def count_distribution(
    mean: float, dispersion: float
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The counts an interval expecting ``mean`` calls may get, and their probabilities:
    negative binomial (variance ``mean + dispersion·mean²``), Poisson when ``dispersion`` is
    0; cut :data:`SPREADS` standard deviations either side, renormalised."""
    if not (mean >= 0 and dispersion >= 0):
        raise StaffingError(f"mean {mean} and dispersion {dispersion}: expected >= 0")
    if mean == 0:
        return np.array([0]), np.array([1.0])
    deviation = math.sqrt(mean + dispersion * mean * mean)
    low = max(0, math.floor(mean - SPREADS * deviation))
    counts = np.arange(low, math.ceil(mean + SPREADS * deviation) + 2)
    if dispersion > 0:  # gamma-Poisson: r = 1/φ successes, success probability 1/(1 + φm)
        r = 1 / dispersion
        logs = (
            special.gammaln(counts + r)
            - special.gammaln(r)
            - special.gammaln(counts + 1)
            - r * math.log1p(dispersion * mean)
            + counts * math.log(dispersion * mean / (1 + dispersion * mean))
        )
    else:
        logs = counts * math.log(mean) - mean - special.gammaln(counts + 1)
    weights = np.exp(logs - logs.max())
    return counts, weights / weights.sum()


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval to staff: calls expected over ``seconds``, each ``handle_s`` long."""

    offered: float
    handle_s: float
    seconds: float
    patience_s: float | None
    """None: Erlang C."""
    dispersion: float = 0.0


class _Odds:
    """P(met | n agents) for one interval and target, the count's law computed once."""

    def __init__(self, interval: Interval, target: ServiceLevel | AbandonRate) -> None:
        self._interval, self._target = interval, target
        counts, weights = _coarse(*count_distribution(interval.offered, interval.dispersion))
        self._zero = float(weights[counts == 0].sum())  # no caller: the target is met
        self._counts, self._weights = counts[counts > 0], weights[counts > 0]
        self._known: dict[int, float] = {}

    def __call__(self, agents: int) -> float:
        if agents not in self._known:
            self._known[agents] = self._compute(agents)
        return self._known[agents]

    def _compute(self, agents: int) -> float:
        counts, one, target = self._counts, self._interval, self._target
        rates = counts / one.seconds
        if isinstance(target, ServiceLevel):
            quick = service_levels(rates, one.handle_s, agents, target.within_s, one.patience_s)
            needed = np.ceil(target.share * counts - 1e-9)
            met = special.bdtrc(needed - 1, counts, np.clip(quick, 0, 1))
        else:
            answered = service_levels(rates, one.handle_s, agents, math.inf, one.patience_s)
            allowed = np.floor(target.share * counts + 1e-9)
            met = special.bdtr(allowed, counts, np.clip(1 - answered, 0, 1))
        return self._zero + float(np.dot(self._weights, met))


def _coarse(
    counts: NDArray[np.int64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """At most :data:`POINTS` counts: neighbouring counts pooled at their weighted mean (a
    big interval's service level hardly changes from one caller to the next)."""
    if counts.size <= POINTS:
        return counts, weights
    starts = np.arange(0, counts.size, math.ceil(counts.size / POINTS))
    pooled = np.add.reduceat(weights, starts)
    means = np.add.reduceat(weights * counts, starts) / np.maximum(pooled, 1e-300)
    return np.rint(means).astype(np.int64), pooled


def meet_probability(agents: int, interval: Interval, target: ServiceLevel | AbandonRate) -> float:
    """Probability that ``agents`` on the phones meet ``target`` in ``interval``."""
    return _Odds(interval, target)(agents)


def agents_for(
    confidence: float,
    interval: Interval,
    target: Target,
    *,
    start: int,
    least: int = 0,
) -> int:
    """The fewest agents (not below ``least``) meeting ``target`` with probability
    ``confidence``, searched from ``start`` (the expected staffing: the answer is near).

    An ASA target is an average over the callers, not a count of them: it is staffed for the
    count's ``confidence``-quantile (the count's scatter only)."""
    check_confidence(confidence)
    if interval.offered == 0:
        return max(0, least)
    if isinstance(target, AverageSpeedOfAnswer):
        counts, weights = count_distribution(interval.offered, interval.dispersion)
        quantile = counts[
            min(int(np.searchsorted(np.cumsum(weights), confidence)), counts.size - 1)
        ]
        rate = float(quantile) / interval.seconds
        return max(
            least, agents_needed(rate, interval.handle_s, target, patience_s=interval.patience_s)
        )
    odds = _Odds(interval, target)
    load = interval.offered / interval.seconds * interval.handle_s
    floor = max(least, 1)  # calls expected: someone answers them, however unlikely they are
    ceiling = max(start, floor) + 50 + int(10 * math.sqrt(interval.offered + load))
    fewest = _fewest(lambda n: odds(n) >= confidence, max(start, floor), floor, ceiling)
    if fewest is None:
        raise StaffingError(
            f"target {target} with confidence {confidence:g}: not met with {ceiling} agents"
        )
    return fewest


def _fewest(meets: Callable[[int], bool], start: int, floor: int, ceiling: int) -> int | None:
    """The fewest ``n`` in ``floor..ceiling`` that ``meets`` (true from some ``n`` on),
    galloping from ``start`` (near the answer) then halving; None if ``ceiling`` does not."""
    step = 1
    if meets(start):
        high, low = start, start - 1
        while low >= floor and meets(low):
            high, step = low, step * 2
            low = high - step
        low = max(low, floor - 1)
    else:
        low, high = start, start + 1
        while high <= ceiling and not meets(high):
            low, step = high, step * 2
            high = low + step
        if high > ceiling:
            if not meets(ceiling):
                return None
            high = ceiling
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return high
