"""The what-if simulator: hand-checked synthetic traffic, the command, and the soundness check
on the bank's real August 1999 traffic (skipped when the shared data is absent): the bank's rule
is read from the first week and checked on the rest of the month."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from cti_server.cli.main import main
from cti_server.routing import Policy, builtin_policy, parse_policy
from cti_server.routing.simulator import Report, observed, simulate
from cti_server.routing.traffic import (
    Shift,
    Traffic,
    TrafficCall,
    TrafficError,
    load_traffic,
    observed_lead,
    parse_days,
)
from tests.support.replay import DATA

BANK = DATA / "callcenter_traffic" / "august_1999_calls.csv.gz"
FIRST_WEEK = parse_days("1999-08-01..1999-08-07")
REST_OF_MONTH = ("1999-08-08..1999-08-14", "1999-08-15..1999-08-21", "1999-08-22..1999-08-31")

WAIT_TOLERANCE = 0.20
"""Simulated mean wait per class within 20 % of the observed one."""
ABANDON_TOLERANCE = 0.03
"""Simulated abandon rate per class within 3 percentage points of the observed one."""


def _call(
    call_id: str, arrival: float, klass: int, handle: float, patience: float = math.inf
) -> TrafficCall:
    return TrafficCall(
        id=call_id,
        arrival=arrival,
        klass=klass,
        kind="PS",
        handle=handle,
        after_call=0.0,
        patience=patience,
        observed_wait=0.0,
        observed="served",
        customer=None,
    )


SMALL = Traffic(
    calls=(
        _call("first", 0, klass=1, handle=100),  # the only agent is busy until 100
        _call("regular", 10, klass=1, handle=50),
        _call("priority", 20, klass=2, handle=50),  # 90 s head start: before "regular"
        _call("impatient", 30, klass=0, handle=50, patience=60),  # hangs up at 90
    ),
    shifts=(Shift("A", 0, 10_000),),
    skills={"A": {"PS": 10}},
    days=(date(1999, 8, 1),),
)


def test_the_bank_rule_on_hand_checked_traffic() -> None:
    report = simulate(SMALL, builtin_policy("bank-fifo"))

    regular, priority, unserved = (report.classes[k] for k in ("1", "2", "0"))
    # "priority" answered at 100 (waited 80), then "regular" at 150 (waited 140)
    assert (priority.asa, priority.answered) == (80.0, 1)
    assert (regular.asa, regular.answered, regular.service_level) == (70.0, 2, 0.5)
    assert (unserved.abandon_rate, unserved.mean_wait, unserved.answered) == (1.0, 60.0, 0)
    assert report.classes["all"].offered == 4


def test_without_a_head_start_the_earlier_caller_goes_first() -> None:
    fifo = parse_policy(
        "name: fifo\npriority: {tiers: {standard: {}}}\neligibility: [{after: 0, min_level: 1}]",
        "fifo.yaml",
    )

    report = simulate(SMALL, fifo)

    assert report.classes["1"].asa == 45.0  # 0 and 90
    assert report.classes["2"].asa == 130.0


def test_more_agents_answer_at_once() -> None:
    report = simulate(SMALL, builtin_policy("bank-fifo"), agents=4)

    assert report.classes["all"].asa == 0.0
    assert report.classes["all"].service_level == 1.0


BANK_HEADER = (
    "vru+line,call_id,customer_id,priority,type,date,vru_entry,vru_exit,vru_time,q_start,"
    "q_exit,q_time,outcome,ser_start,ser_exit,ser_time,server"
)
BANK_ROWS = [
    "AA0101,1,0,0,PS,1999-08-01,9:59:50,10:00:00,10,0:00:00,0:00:00,0,AGENT,10:00:00,10:05:00,300,DINA",
    "AA0102,2,11,1,PS,1999-08-01,10:00:50,10:01:00,10,10:01:00,10:05:00,240,AGENT,10:05:00,10:06:00,60,DINA",
    "AA0103,3,12,2,PS,1999-08-01,10:01:50,10:02:00,10,10:02:00,10:03:00,60,HANG,0:00:00,0:00:00,0,NO_SERVER",
    "AA0104,4,0,0,PS,1999-08-01,10:03:00,10:03:20,20,0:00:00,0:00:00,0,HANG,0:00:00,0:00:00,0,NO_SERVER",
]


def test_an_agent_is_off_a_type_while_they_take_others_and_leave_its_callers_waiting(
    tmp_path: Path,
) -> None:
    """DINA serves prospects (NW) at 10:00 and 10:10; at 10:05 she takes a regular call straight
    from the voice unit while a prospect waits (and hangs up): she was not taking prospects
    between her two prospect calls."""
    rows = [
        "AA0101,1,0,0,NW,1999-08-01,9:58:50,9:59:00,10,9:59:00,10:00:00,60,AGENT,10:00:00,10:02:00,120,DINA",
        "AA0102,2,0,0,PS,1999-08-01,10:04:50,10:05:00,10,0:00:00,0:00:00,0,AGENT,10:05:00,10:07:00,120,DINA",
        "AA0103,3,0,0,NW,1999-08-01,10:03:50,10:04:00,10,10:04:00,10:07:20,200,HANG,0:00:00,0:00:00,0,NO_SERVER",
        "AA0104,4,0,0,NW,1999-08-01,10:08:50,10:09:00,10,10:09:00,10:10:00,60,AGENT,10:10:00,10:12:00,120,DINA",
        "AA0105,5,7,1,PS,1999-08-01,10:12:20,10:12:30,10,10:12:30,10:13:00,30,AGENT,10:13:00,10:15:00,120,DINA",
    ]
    traffic = tmp_path / "calls.csv"
    traffic.write_text("\n".join([BANK_HEADER, *rows]) + "\n", encoding="utf-8")

    shifts = load_traffic(traffic).shifts

    both, regular = frozenset({"NW", "PS"}), frozenset({"PS"})
    assert shifts == (
        Shift("DINA", 36000, 36120, both),
        Shift("DINA", 36120, 36600, regular),  # from her first prospect's end to her second
        Shift("DINA", 36600, 36900, both),
    )


def test_an_agent_stays_on_duty_from_one_part_of_a_shift_to_the_next() -> None:
    """Busy across the change of types at 100, then free for the prospect who waited."""
    traffic = Traffic(
        calls=(
            _call("regular", 0, klass=1, handle=150),
            replace(_call("prospect", 10, klass=0, handle=50), kind="NW"),
        ),
        shifts=(
            Shift("A", 0, 100, frozenset({"PS"})),
            Shift("A", 100, 1_000, frozenset({"PS", "NW"})),
        ),
        skills={"A": {"PS": 10, "NW": 10}},
        days=(date(1999, 8, 1),),
    )

    report = simulate(traffic, builtin_policy("bank-observed"))

    assert (report.classes["0"].answered, report.classes["0"].asa) == (1, 140.0)


def test_the_command_compares_policies_on_a_traffic_file(tmp_path: Path) -> None:
    traffic = tmp_path / "calls.csv"
    traffic.write_text("\n".join([BANK_HEADER, *BANK_ROWS]) + "\n", encoding="utf-8")

    policies = ["--policy", "bank-fifo", "--policy", "default"]
    result = CliRunner().invoke(
        main,
        ["routing", "simulate", "--traffic", str(traffic), *policies, "--service-level", "30"],
    )

    assert result.exit_code == 0, result.output
    assert "calls.csv: 3 calls, 1999-08-01..1999-08-01, 1 agents as recorded" in result.output
    lines = result.output.splitlines()
    assert "SL 30s" in lines[1]
    assert [line.split()[:3] for line in lines[3:6]] == [
        ["0", "observed", "0"],
        ["0", "bank-fifo", "0"],
        ["0", "default", "0"],
    ]
    assert lines[6].split()[:5] == ["1", "observed", "1", "240.0", "240.0"]


def test_the_command_names_a_bad_policy_and_a_bad_file(tmp_path: Path) -> None:
    traffic = tmp_path / "calls.csv"
    traffic.write_text("a,b\n1,2\n", encoding="utf-8")

    bad_policy = CliRunner().invoke(
        main, ["routing", "simulate", "--traffic", str(traffic), "--policy", "fastest"]
    )
    bad_file = CliRunner().invoke(
        main, ["routing", "simulate", "--traffic", str(traffic), "--policy", "default"]
    )

    assert bad_policy.exit_code == 2
    assert "fastest: no such file, nor a built-in policy" in bad_policy.output
    assert bad_file.exit_code == 2
    assert "calls.csv: no column 'date'" in bad_file.output


def test_days_are_a_date_or_a_range() -> None:
    assert parse_days("1999-08-30..1999-09-01") == [
        date(1999, 8, 30),
        date(1999, 8, 31),
        date(1999, 9, 1),
    ]
    with pytest.raises(TrafficError, match="the last day is before the first"):
        parse_days("1999-08-02..1999-08-01")


def test_without_a_policy_the_command_compares_the_bank_s_observed_rule_with_ours(
    tmp_path: Path,
) -> None:
    traffic = tmp_path / "calls.csv"
    traffic.write_text("\n".join([BANK_HEADER, *BANK_ROWS]) + "\n", encoding="utf-8")

    result = CliRunner().invoke(main, ["routing", "simulate", "--traffic", str(traffic)])

    assert result.exit_code == 0, result.output
    rows = [line.split()[:2] for line in result.output.splitlines()[3:6]]
    assert rows == [["0", "observed"], ["0", "bank-observed"], ["0", "default"]]


def _bank() -> Path:
    if not BANK.is_file():
        pytest.skip(f"shared data not present: {BANK}")
    return BANK


@pytest.fixture(scope="module")
def first_week() -> Traffic:
    return load_traffic(_bank(), FIRST_WEEK)


@pytest.fixture(scope="module")
def rest_of_month() -> dict[str, Traffic]:
    bank = _bank()
    return {days: load_traffic(bank, parse_days(days)) for days in REST_OF_MONTH}


def test_the_bank_rule_reproduces_the_observed_waits_and_abandons(first_week: Traffic) -> None:
    """The soundness check: the bank's own rule (FIFO, priority customers 90 s ahead) with the
    staffing recorded reproduces what its account holders lived through in the first week of
    August 1999: classes 1 and 2, 6,857 callers who reached the queue.

    Class 0 (internet users and prospective customers) is not held to it: the bank did not
    serve them first come, first served with the others but 90 s behind class 1, so FIFO
    predicts shorter waits for them than they had (``bank-observed``, the tests below).
    """
    real = observed(first_week)
    replay = simulate(first_week, builtin_policy("bank-fifo"))

    for klass in ("1", "2"):
        seen, simulated = real.classes[klass], replay.classes[klass]
        assert simulated.offered == seen.offered
        assert abs(simulated.mean_wait / seen.mean_wait - 1) <= WAIT_TOLERANCE, _show(
            real, replay, klass
        )
        assert abs(simulated.abandon_rate - seen.abandon_rate) <= ABANDON_TOLERANCE, _show(
            real, replay, klass
        )


def test_the_bank_s_choices_put_class_0_ninety_seconds_behind_class_1() -> None:
    """What ``bank-observed`` is made of, read from the first week's services: whom an agent
    took when a caller of each class was waiting. Class 2's lead over class 1 is the documented
    1.5 minutes; class 0, documented as treated as class 1, came 90 s after it."""
    bank = _bank()
    policy = builtin_policy("bank-observed")

    behind = observed_lead(bank, FIRST_WEEK, ahead=1, behind=0)
    documented = observed_lead(bank, FIRST_WEEK, ahead=2, behind=1)

    assert behind.seconds == policy.overtake_bound("prospect", "standard") == 90
    assert (behind.choices, round(behind.explained, 2)) == (1068, 0.94)
    assert documented.seconds == policy.overtake_bound("standard", "gold") == 90
    assert documented.explained > 0.85


def test_the_observed_rule_reproduces_every_class_in_the_week_it_was_read_from(
    first_week: Traffic,
) -> None:
    """Not a validation (the rule and the staffing's break were read from this week): the
    rule as read does what it was read for. The check is the next test."""
    real = observed(first_week)
    replay = simulate(first_week, builtin_policy("bank-observed"))

    for klass in ("0", "1", "2"):
        assert _within(real, replay, klass), _show(real, replay, klass)


def test_on_the_rest_of_the_month_the_observed_rule_reproduces_classes_1_and_2_not_0(
    rest_of_month: dict[str, Traffic],
) -> None:
    """The held-out check (see :mod:`cti_server.routing.simulator` for the figures): classes 1
    and 2 within the tolerance in every later week, class 0 nearer than under FIFO in every
    week and within the tolerance in 8-14 August, yet its abandon rate more than 3 points short
    in the second half of the month."""
    observed_rule, fifo = builtin_policy("bank-observed"), builtin_policy("bank-fifo")
    for days, traffic in rest_of_month.items():
        real = observed(traffic)
        replay, yardstick = simulate(traffic, observed_rule), simulate(traffic, fifo)

        for klass in ("1", "2"):
            assert _within(real, replay, klass), f"{days}: {_show(real, replay, klass)}"
        assert _miss(real, replay) < _miss(real, yardstick), days
        if days == REST_OF_MONTH[0]:  # 8-14 August
            assert _within(real, replay, "0"), f"{days}: {_show(real, replay, '0')}"
        else:  # 15-31 August
            short = real.classes["0"].abandon_rate - replay.classes["0"].abandon_rate
            assert short > ABANDON_TOLERANCE, f"{days}: {_show(real, replay, '0')}"


def test_over_the_month_the_observed_rule_reproduces_every_class() -> None:
    """The soundness check the what-if figures stand on: the whole of August 1999 replayed
    under the bank's rule as its agents' choices show it (the leads are counted from whom agents
    took, never fitted to waits or abandons) gives every class's mean wait within 20 % and its
    abandon rate within 3 points of the record (class 0: 135 s against 144 s, 45.5 % against
    48.0 %). Week by week class 0 drifts in the second half of the month (the test above)."""
    month = load_traffic(_bank(), parse_days("1999-08-01..1999-08-31"))
    real = observed(month)
    replay = simulate(month, builtin_policy("bank-observed"))

    for klass in ("0", "1", "2"):
        assert _within(real, replay, klass), _show(real, replay, klass)


def _lead(seconds: int) -> Policy:
    """Class 0 ``seconds`` behind class 1, class 2 90 s ahead of it."""
    return parse_policy(
        f"name: lead-{seconds}\npriority: {{tiers: {{gold: {{head_start: {seconds + 90}}}, "
        f"standard: {{head_start: {seconds}}}, prospect: {{}}}}}}\n"
        "eligibility: [{after: 0, min_level: 1}]",
        "lead.yaml",
    )


def test_no_head_start_reproduces_class_0_in_both_the_first_and_the_last_days(
    first_week: Traffic, rest_of_month: dict[str, Traffic]
) -> None:
    """Why class 0 is not held to the tolerance: account holders strictly first (a head start
    of a day) makes class 0 wait far too long in the first week, and a head start of 240 s,
    still within the tolerance there, leaves its abandon rate short in 22-31 August."""
    last_days = rest_of_month[REST_OF_MONTH[-1]]
    early, late = observed(first_week), observed(last_days)

    strict = simulate(first_week, _lead(86400))
    early_replay, late_replay = simulate(first_week, _lead(240)), simulate(last_days, _lead(240))

    assert strict.classes["0"].mean_wait > (1 + WAIT_TOLERANCE) * early.classes["0"].mean_wait
    assert _within(early, early_replay, "0"), _show(early, early_replay, "0")
    assert (
        late_replay.classes["0"].abandon_rate < late.classes["0"].abandon_rate - ABANDON_TOLERANCE
    )


def _within(real: Report, replay: Report, klass: str) -> bool:
    seen, simulated = real.classes[klass], replay.classes[klass]
    return (
        simulated.offered == seen.offered
        and abs(simulated.mean_wait / seen.mean_wait - 1) <= WAIT_TOLERANCE
        and abs(simulated.abandon_rate - seen.abandon_rate) <= ABANDON_TOLERANCE
    )


def _miss(real: Report, replay: Report) -> float:
    """Class 0's error: relative error of the mean wait plus that of the abandon rate."""
    seen, simulated = real.classes["0"], replay.classes["0"]
    return abs(simulated.mean_wait / seen.mean_wait - 1) + abs(
        simulated.abandon_rate / seen.abandon_rate - 1
    )


def _show(real: Report, replay: Report, klass: str) -> str:
    seen, simulated = real.classes[klass], replay.classes[klass]
    return (
        f"class {klass}: observed wait {seen.mean_wait:.1f} s, abandon {seen.abandon_rate:.1%}; "
        f"simulated {simulated.mean_wait:.1f} s, {simulated.abandon_rate:.1%}"
    )


def test_a_replay_is_deterministic(first_week: Traffic) -> None:
    policy = builtin_policy("default")

    assert simulate(first_week, policy) == simulate(first_week, policy)
