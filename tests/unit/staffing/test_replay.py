"""A staffing replayed on recorded calls: the roster follows the plan interval by interval,
and what each interval's callers got is counted where they arrived."""

from __future__ import annotations

from datetime import date, datetime

from cti_server.routing import builtin_policy
from cti_server.routing.traffic import Shift, Traffic
from cti_server.staffing.replay import Reached, replay_staffing, roster
from cti_server.staffing.targets import AbandonRate, AverageSpeedOfAnswer, ServiceLevel
from tests.support.traffic_calls import recorded_call

DAY = date(2026, 12, 14)
AT_9 = datetime(2026, 12, 14, 9, 0)
AT_930 = datetime(2026, 12, 14, 9, 30)
AT_10 = datetime(2026, 12, 14, 10, 0)


def test_the_roster_puts_each_intervals_agents_on_duty_and_merges_runs() -> None:
    shifts, skills = roster({AT_9: 2, AT_930: 1, AT_10: 2}, DAY, 30, ["PS", "NW"])

    assert sorted(shifts, key=lambda s: (s.agent, s.start)) == [
        Shift("agent-001", 9 * 3600, 10.5 * 3600),
        Shift("agent-002", 9 * 3600, 9.5 * 3600),
        Shift("agent-002", 10 * 3600, 10.5 * 3600),
    ]
    assert skills["agent-002"] == {"PS": 5, "NW": 5}


def test_callers_of_an_interval_without_agents_wait_for_the_next_one() -> None:
    """Two callers at 9:10 and 9:20, nobody on duty before 9:30: the patient one is answered
    at 9:30 (20 minutes later), the other hangs up after five minutes."""
    traffic = Traffic(
        calls=(
            recorded_call("patient", 9 * 3600 + 600, handle=60),
            recorded_call("impatient", 9 * 3600 + 1200, handle=60, patience=300),
            recorded_call("later", 9 * 3600 + 1900, handle=60),
        ),
        shifts=(),
        skills={},
        days=(DAY,),
    )

    reached = replay_staffing(
        traffic,
        DAY,
        {AT_9: 0, AT_930: 1},
        builtin_policy("bank-fifo"),
        minutes=30,
        threshold=20,
    )

    assert reached[AT_9] == Reached(offered=2, quick=0, answered=1, waited_s=1200.0)
    assert reached[AT_930] == Reached(offered=1, quick=1, answered=1, waited_s=0.0)
    assert not reached[AT_9].met(ServiceLevel(0.8, 20))
    assert not reached[AT_9].met(AbandonRate(0.2))
    assert reached[AT_930].met(AverageSpeedOfAnswer(10))
    assert reached[AT_9] + reached[AT_930] == Reached(3, 1, 2, 1200.0)
