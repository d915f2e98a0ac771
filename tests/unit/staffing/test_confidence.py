"""Staffing with a confidence: the margin grows with the confidence asked, matches sums done
by hand and Poisson tables, and the forecast's error is read off a history whose errors are
known."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from cti_server.staffing.confidence import (
    Interval,
    agents_for,
    count_distribution,
    forecast_error,
    meet_probability,
)
from cti_server.staffing.erlang import Queue, StaffingError, service_levels
from cti_server.staffing.forecast import Expected, Forecast
from cti_server.staffing.history import History, Load
from cti_server.staffing.plan import Staffing, on_the_phones, outcomes, plan
from cti_server.staffing.targets import (
    AbandonRate,
    AverageSpeedOfAnswer,
    ServiceLevel,
    agents_needed,
)

HALF_HOUR = 1800.0
EIGHTY_TWENTY = ServiceLevel(0.8, 20)


@pytest.mark.parametrize("patience", [None, 30.0, 389.0, 3000.0])
@pytest.mark.parametrize("agents", [1, 4, 12, 60, 400])
def test_the_service_level_of_many_rates_at_once_is_the_queues_one_by_one(
    patience: float | None, agents: int
) -> None:
    """The incomplete-gamma form against the numerical integrals of :class:`Queue` (which
    test_erlang checks against the birth-and-death chain), from idle to overloaded."""
    rates = np.array([0.0, 0.05, 0.5, 0.9, 1.0, 1.2, 3.0]) * agents / 200
    many = service_levels(rates, 200.0, agents, 20.0, patience)
    one_by_one = [Queue(float(r), 200.0, agents, patience).service_level(20) for r in rates]

    assert many == pytest.approx(one_by_one, abs=1e-9)


def test_one_call_in_ten_half_hours_by_hand() -> None:
    """Poisson(0.1) callers, one agent, Erlang C, 3-minute calls. No caller (probability
    e^-0.1): met. One caller: answered within 20 s with probability 1 - r e^-(μ-λ)20 (M/M/1,
    utilisation r = 0.1). Two callers: both so, that probability squared at r = 0.2. Three or
    more weigh under 2e-4 (and meet it with at least 0.5)."""
    mu = 1 / 180
    one = 1 - 0.1 * math.exp(-(mu - 1 / 1800) * 20)
    two = 1 - 0.2 * math.exp(-(mu - 2 / 1800) * 20)
    by_hand = math.exp(-0.1) * (1 + 0.1 * one + 0.1**2 / 2 * two**2)

    got = meet_probability(1, Interval(0.1, 180.0, HALF_HOUR, None), EIGHTY_TWENTY)

    assert got == pytest.approx(by_hand, abs=2e-4)


def test_forty_calls_at_the_expected_staffing_meet_eighty_twenty_three_times_in_four() -> None:
    """The expected staffing (Erlang A's) of 40 calls a half-hour meets 80/20 on average but
    not in every interval: Poisson's scatter alone leaves about a quarter below it."""
    interval = Interval(40.0, 200.0, HALF_HOUR, 389.0)
    expected = agents_needed(40 / HALF_HOUR, 200.0, EIGHTY_TWENTY, patience_s=389.0)

    assert 0.6 < meet_probability(expected, interval, EIGHTY_TWENTY) < 0.85
    assert meet_probability(expected + 2, interval, EIGHTY_TWENTY) > 0.99


@pytest.mark.parametrize("offered", [0.4, 8.0, 40.0, 200.0])
@pytest.mark.parametrize("patience", [None, 389.0])
@pytest.mark.parametrize("dispersion", [0.0, 0.06])
def test_more_confidence_never_fewer_agents(
    offered: float, patience: float | None, dispersion: float
) -> None:
    interval = Interval(offered, 200.0, HALF_HOUR, patience, dispersion)
    expected = agents_needed(offered / HALF_HOUR, 200.0, EIGHTY_TWENTY, patience_s=patience)
    levels = [0.05, 0.2, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]

    agents = [agents_for(p, interval, EIGHTY_TWENTY, start=expected) for p in levels]

    assert agents == sorted(agents)
    assert agents[-1] > agents[0]
    for p, n in zip(levels, agents, strict=True):  # the fewest that give it, from anywhere
        assert meet_probability(n, interval, EIGHTY_TWENTY) >= p
        assert n == 1 or meet_probability(n - 1, interval, EIGHTY_TWENTY) < p
        assert agents_for(p, interval, EIGHTY_TWENTY, start=1) == n
        assert agents_for(p, interval, EIGHTY_TWENTY, start=n + 9) == n


def test_a_wrong_forecast_needs_a_wider_margin() -> None:
    exact = Interval(40.0, 200.0, HALF_HOUR, 389.0, dispersion=0.0)
    wrong = Interval(40.0, 200.0, HALF_HOUR, 389.0, dispersion=0.06)

    assert agents_for(0.9, wrong, EIGHTY_TWENTY, start=7) > agents_for(
        0.9, exact, EIGHTY_TWENTY, start=7
    )


def test_an_asa_target_is_staffed_for_the_counts_quantile() -> None:
    """Poisson(40)'s 90th percentile, as any Poisson table gives it (scipy here): 48 calls."""
    quantile = stats.poisson.ppf(0.9, 40)
    target = AverageSpeedOfAnswer(15)

    got = agents_for(0.9, Interval(40.0, 200.0, HALF_HOUR, None), target, start=5)

    assert quantile == 48
    assert got == agents_needed(48 / HALF_HOUR, 200.0, target)


def test_an_abandon_target_gets_a_margin_too() -> None:
    target, interval = AbandonRate(0.05), Interval(40.0, 200.0, HALF_HOUR, 389.0, 0.06)
    expected = agents_needed(40 / HALF_HOUR, 200.0, target, patience_s=389.0)

    assert agents_for(0.9, interval, target, start=expected) > expected


def test_the_counts_law_is_negative_binomial_with_the_dispersion_asked() -> None:
    counts, weights = count_distribution(40.0, 0.06)

    assert weights.sum() == pytest.approx(1.0)
    assert float(np.dot(counts, weights)) == pytest.approx(40.0, rel=1e-4)
    variance = float(np.dot((counts - 40.0) ** 2, weights))
    assert variance == pytest.approx(40 + 0.06 * 40**2, rel=1e-3)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.2, math.nan])
def test_a_confidence_outside_zero_to_one_is_refused(confidence: float) -> None:
    with pytest.raises(StaffingError, match="confidence"):
        agents_for(confidence, Interval(40.0, 200.0, HALF_HOUR, None), EIGHTY_TWENTY, start=7)
    rules = Staffing(EIGHTY_TWENTY, 389.0, confidence=confidence)
    with pytest.raises(StaffingError, match="confidence"):
        plan(_flat_forecast(), "sales", rules)


def test_a_plan_with_confidence_staffs_every_interval_at_least_as_much() -> None:
    expected = plan(_flat_forecast(), "sales", Staffing(EIGHTY_TWENTY, 389.0))
    confident = plan(
        _flat_forecast(), "sales", Staffing(EIGHTY_TWENTY, 389.0, confidence=0.9, dispersion=0.06)
    )

    for before, after in zip(expected, confident, strict=True):
        assert after.erlang_a >= before.erlang_a
        assert after.erlang_c >= before.erlang_c
        assert after.scheduled_a >= before.scheduled_a
    assert sum(r.erlang_a for r in confident) > sum(r.erlang_a for r in expected)


def test_each_interval_of_a_confident_plan_says_its_chance_of_meeting_the_target() -> None:
    rules = Staffing(EIGHTY_TWENTY, 389.0, confidence=0.9, dispersion=0.06)
    rows = plan(_flat_forecast(), "sales", rules)
    usual = Staffing(EIGHTY_TWENTY, 389.0)

    sure = outcomes(rows, on_the_phones(rows), rules, 30)
    short = outcomes(rows, {r.start: r.erlang_a - 1 for r in rows}, rules, 30)

    assert all(o.chance is not None and o.chance >= 0.9 for o in sure)
    assert all(o.chance is not None and o.chance < 0.9 for o in short)
    assert all(o.chance is None for o in outcomes(rows, on_the_phones(rows), usual, 30))


FIRST = date(2026, 11, 1)


def _history(level: list[float], *, noise: random.Random | None = None) -> History:
    """Three weeks of 48 half-hours a day, every half-hour of week ``w`` ``level[w]`` calls
    (Poisson around it with ``noise``)."""
    days = tuple(FIRST + timedelta(days=n) for n in range(7 * len(level)))
    loads: dict[datetime, Load] = {}
    for day in days:
        for slot in range(48):
            start = datetime.combine(day, datetime.min.time()) + timedelta(minutes=30 * slot)
            mean = level[(day - FIRST).days // 7]
            calls = (
                int(np.random.default_rng(noise.getrandbits(32)).poisson(mean))
                if noise
                else int(mean)
            )
            loads[start] = Load(calls, calls, 200.0 * calls)
    return History(30, days, {"sales": loads})


def test_the_forecasts_error_is_read_off_a_history_that_doubled_for_a_week() -> None:
    """30 calls a half-hour, 60 in the second week, 30 again: the profile forecast (last
    week's same day, flat shape) says 30 for week two and 60 for week three, and misses by
    30 every half-hour. φ = Σ((y - m)² - m) / Σm² = ((900 - 30) + (900 - 60)) / (900 + 3600)."""
    error = forecast_error(_history([30, 60, 30]), "sales")

    assert error.days == 14
    assert error.intervals == 14 * 48
    assert error.dispersion == pytest.approx((870 + 840) / 4500)


def test_a_forecast_right_but_for_poisson_has_next_to_no_dispersion() -> None:
    error = forecast_error(_history([30, 30, 30], noise=random.Random(7)), "sales")

    assert error.dispersion < 0.02
    assert forecast_error(_history([30, 30, 30]), "sales").dispersion == 0


def _flat_forecast() -> Forecast:
    day = date(2026, 12, 14)
    starts = [datetime(2026, 12, 14, 9) + timedelta(minutes=30 * n) for n in range(6)]
    return Forecast(
        "profile",
        30,
        (day,),
        {"sales": {s: Expected(10.0 * (n + 1), 200.0) for n, s in enumerate(starts)}},
    )
