"""The plan per interval and its what-ifs: more calls on one day, fewer agents from a time."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from cti_server.staffing.erlang import StaffingError
from cti_server.staffing.forecast import Expected, Forecast
from cti_server.staffing.plan import Staffing, fewer, on_the_phones, outcomes, plan, scale
from cti_server.staffing.targets import ServiceLevel

MONDAY, TUESDAY = date(2026, 12, 14), date(2026, 12, 15)
STARTS = [
    datetime(d.year, d.month, d.day, h, m)
    for d in (MONDAY, TUESDAY)
    for h in (13, 14)
    for m in (0, 30)
]
FORECAST = Forecast(
    method="profile",
    minutes=30,
    days=(MONDAY, TUESDAY),
    queues={"sales": {s: Expected(100.0, 180.0) for s in STARTS}},
)
RULES = Staffing(ServiceLevel(0.8, 20), patience_s=300, shrinkage=0.3)


def test_each_interval_gets_erlang_c_and_erlang_a_agents_and_a_schedule() -> None:
    rows = plan(FORECAST, "sales", RULES)

    assert [r.start for r in rows] == STARTS
    assert all(r.erlang_c == 14 for r in rows)  # the published Erlang C example
    assert all(r.erlang_a <= r.erlang_c for r in rows)
    assert all(r.scheduled_c == 20 for r in rows)
    assert all(o.met for o in outcomes(rows, on_the_phones(rows), RULES, 30))


def test_a_mailing_doubling_mondays_calls_breaks_the_target_without_more_agents() -> None:
    rows = plan(FORECAST, "sales", RULES)
    doubled = plan(scale(FORECAST, 2, on=MONDAY), "sales", RULES)
    after = outcomes(doubled, on_the_phones(rows), RULES, 30)

    for row, outcome in zip(doubled, after, strict=True):
        if row.start.date() == MONDAY:
            assert row.offered == 200
            assert row.erlang_a > 14
            assert not outcome.met
            assert outcome.abandon_rate > 0.1
        else:
            assert row.offered == 100
            assert outcome.met


def test_four_agents_fewer_from_two_oclock_lower_the_service_level_from_then_only() -> None:
    rows = plan(FORECAST, "sales", RULES)
    staffed = on_the_phones(rows)
    fewer_agents = fewer(staffed, 4, since=time(14, 0), on=MONDAY)
    before, after = outcomes(rows, staffed, RULES, 30), outcomes(rows, fewer_agents, RULES, 30)

    for start, then, now in zip(STARTS, before, after, strict=True):
        if start.date() == MONDAY and start.hour >= 14:
            assert now.agents == then.agents - 4
            assert now.service_level < then.service_level - 0.2
        else:
            assert now == then


def test_bad_what_ifs_are_refused() -> None:
    with pytest.raises(StaffingError, match="not a day of the forecast"):
        scale(FORECAST, 2, on=date(2026, 12, 16))
    with pytest.raises(StaffingError, match="no forecast for queue"):
        plan(FORECAST, "support", RULES)
    with pytest.raises(StaffingError, match="factor"):
        scale(FORECAST, -1)
