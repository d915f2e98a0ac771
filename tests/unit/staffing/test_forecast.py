"""The forecast on synthetic seasonal data: it keeps the weekly and daily pattern, follows
last week's level, beats the seasonal-naive baseline on noisy counts, and honours the
calendar's holidays and closed hours."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from functools import partial

import pytest

from cti_server.ivr.calendar import Calendar
from cti_server.staffing.erlang import StaffingError
from cti_server.staffing.forecast import METHODS, Forecast, accuracy, forecast
from cti_server.staffing.history import ALL_QUEUES, Contact, History, count

FIRST = date(2026, 11, 1)  # a Sunday
WEEKS = [[FIRST + timedelta(days=7 * w + d) for d in range(7)] for w in range(4)]
WEEKDAY = [1.0, 1.2, 1.1, 1.0, 0.9, 0.5, 0.2]  # Monday first, as date.weekday()


def _rate(moment: datetime, level: float = 1.0) -> float:
    """Calls per half-hour: a weekday factor times a two-peak day, closed at night."""
    hour = moment.hour + moment.minute / 60
    if not 7 <= hour < 22:
        return 0.0
    day = 10 + 30 * math.exp(-((hour - 10.5) ** 2) / 4) + 20 * math.exp(-((hour - 15) ** 2) / 6)
    return level * WEEKDAY[moment.weekday()] * day


def _contacts(
    days: list[date], *, noise: random.Random | None = None, level: float = 1.0
) -> list[Contact]:
    contacts = []
    for day in days:
        for slot in range(48):
            start = datetime.combine(day, datetime.min.time()) + timedelta(minutes=30 * slot)
            mean = _rate(start, level)
            calls = _poisson(noise, mean) if noise else round(mean)
            contacts += [
                Contact(start + timedelta(seconds=n), "sales", 10.0, True, 200.0)
                for n in range(calls)
            ]
    return contacts


def _poisson(rng: random.Random, mean: float) -> int:
    calls, moment = 0, rng.expovariate(1.0)
    while moment < mean:
        calls += 1
        moment += rng.expovariate(1.0)
    return calls


def _offered(expected: Forecast, start: datetime) -> float:
    return expected.offered("sales", start)


def _history(contacts: list[Contact]) -> History:
    return count(contacts, 30)


def test_the_profile_keeps_the_weekly_and_daily_pattern() -> None:
    history = _history(_contacts([d for week in WEEKS for d in week]))
    training = history.between(WEEKS[0][0], WEEKS[2][-1])

    expected = forecast(training, WEEKS[3], smoothing=(1.0,))

    for day in WEEKS[3]:
        for start in history.slots(day):
            assert expected.offered("sales", start) == pytest.approx(
                history.load("sales", start).offered
            )
    assert expected.queues["sales"][history.slots(WEEKS[3][1])[20]].handle_s == 200.0


def test_the_level_is_last_weeks() -> None:
    """Volume down a third in the third week: the forecast follows it, not the month's mean."""
    contacts = _contacts([d for week in WEEKS[:2] for d in week])
    contacts += _contacts(WEEKS[2], level=2 / 3)
    training = _history(contacts)

    expected = forecast(training, WEEKS[3][:1])
    total = sum(expected.offered("sales", s) for s in training.slots(WEEKS[3][0]))
    last_week = sum(training.load("sales", s).offered for s in training.slots(WEEKS[2][0]))

    assert total == pytest.approx(last_week)


def test_the_profile_beats_the_seasonal_naive_baseline_on_noisy_counts() -> None:
    history = _history(_contacts([d for w in WEEKS for d in w], noise=random.Random(3)))
    training = history.between(WEEKS[0][0], WEEKS[2][-1])
    errors = {}
    for method in METHODS:
        expected = forecast(training, WEEKS[3], method=method)
        errors[method] = accuracy(partial(_offered, expected), history, "sales", WEEKS[3]).mape

    assert errors["profile"] < 0.9 * errors["seasonal-naive"]


def test_holidays_and_closed_hours_are_forecast_at_zero_and_holidays_left_out() -> None:
    days = [d for week in WEEKS for d in week]
    holiday_before = WEEKS[2][1]  # Monday of the third week: nobody called
    history = _history(_contacts([d for d in days if d != holiday_before]))
    training = history.between(WEEKS[0][0], WEEKS[2][-1])
    monday, tuesday = WEEKS[3][1], WEEKS[3][2]
    calendar = Calendar(
        holidays=[holiday_before, tuesday],
        hours={"mon": ["09:00-17:00"], "tue": ["00:00-24:00"]},
    )

    expected = forecast(training, [monday, tuesday], calendar=calendar, smoothing=(1.0,))

    assert all(expected.offered("sales", s) == 0 for s in history.slots(tuesday))
    for start in history.slots(monday):
        if 9 <= start.hour < 17:  # from the Monday two weeks before, not the empty holiday
            assert expected.offered("sales", start) == pytest.approx(
                history.load("sales", start - timedelta(weeks=2)).offered
            )
        else:
            assert expected.offered("sales", start) == 0


def test_every_queue_is_counted_together_too_and_intervals_must_divide_an_hour() -> None:
    moment = datetime(2026, 11, 2, 10, 7)
    history = count(
        [Contact(moment, "sales", 5, True, 100), Contact(moment, "support", 50, False, None)], 15
    )

    assert history.load(ALL_QUEUES, datetime(2026, 11, 2, 10, 0)).offered == 2
    assert history.load("sales", datetime(2026, 11, 2, 10, 0)).handle_s == 100
    with pytest.raises(StaffingError, match="divide an hour"):
        count([], 45)
    with pytest.raises(StaffingError, match="forecast method"):
        forecast(history, [moment.date()], method="arima")  # type: ignore[arg-type]
