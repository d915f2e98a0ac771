"""``cti staffing forecast|plan`` on a traffic file in the bank's format (synthetic here; the
bank's own August 1999 when the shared data is present), what-ifs included."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from crm_core.models import Interaction
from cti_server.cli.main import main
from tests.support.blank_crm import blank_crm
from tests.support.replay import DATA

BANK = DATA / "callcenter_traffic" / "august_1999_calls.csv.gz"
HEADER = (
    "vru+line,call_id,customer_id,priority,type,date,vru_entry,vru_exit,vru_time,q_start,"
    "q_exit,q_time,outcome,ser_start,ser_exit,ser_time,server"
)
FIRST = date(2026, 11, 1)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TWICE = ["--scale", "2", "--on"]
FOUR_OUT = ["--target", "80%/20s", "--fewer", "4", "--from", "14:00"]


def _clock(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _traffic(path: Path, weeks: int = 3) -> Path:
    """Calls from 9:00 to 17:00 every day, busier mid-morning, one in five hanging up."""
    rng = random.Random(5)
    rows = [HEADER]
    for n in range(7 * weeks):
        day = FIRST + timedelta(days=n)
        for call in range(120):
            hour = 9 + min(7.99, abs(rng.gauss(2, 2)))
            start = int(hour * 3600)
            wait = rng.randint(0, 90)
            common = f"AA01{call:02d},{n * 1000 + call},0,1,PS,{day},{_clock(start - 10)}"
            common += f",{_clock(start)},10,{_clock(start)},{_clock(start + wait)},{wait}"
            if rng.random() < 0.2:
                rows.append(f"{common},HANG,0:00:00,0:00:00,0,NO_SERVER")
            else:
                handle = rng.randint(60, 300)
                served = f"{_clock(start + wait)},{_clock(start + wait + handle)},{handle}"
                rows.append(f"{common},AGENT,{served},AGENT{call % 9}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_forecast_prints_each_open_interval_and_a_what_if(tmp_path: Path) -> None:
    traffic = _traffic(tmp_path / "calls.csv")
    monday = "2026-11-23"

    result = CliRunner().invoke(
        main,
        ["staffing", "forecast", "--traffic", str(traffic), "--days", monday, *TWICE, monday],
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("queue all, profile forecast from 2026-11-01..2026-11-21")
    intervals = [line.split() for line in lines[2:-1]]
    assert intervals[0][:2] == [monday, "09:00"]
    assert all(
        float(cells[4]) == pytest.approx(2 * float(cells[2]), abs=0.2) for cells in intervals
    )
    total = float(lines[-1].split()[1])
    assert total == pytest.approx(120, rel=0.01)  # the Monday before had 120 calls


def test_plan_shows_both_models_and_four_agents_out_from_two_oclock(tmp_path: Path) -> None:
    traffic = _traffic(tmp_path / "calls.csv")

    result = CliRunner().invoke(
        main,
        ["staffing", "plan", "--traffic", str(traffic), "--days", "2026-11-23", *FOUR_OUT],
    )

    assert result.exit_code == 0, result.output
    assert "target 80% in 20 s" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("2026-11-23")]
    for cells in rows:
        erlang_c, erlang_a, agents = int(cells[4]), int(cells[5]), int(cells[11])
        assert erlang_a <= erlang_c
        assert agents == (max(0, erlang_a - 4) if cells[1] >= "14:00" else erlang_a)
    assert "what-if:" in result.output.splitlines()[-1]


def test_bad_options_get_a_clear_message(tmp_path: Path) -> None:
    traffic = _traffic(tmp_path / "calls.csv", weeks=1)
    runner = CliRunner()

    bad_target = runner.invoke(
        main, ["staffing", "plan", "--traffic", str(traffic), "--target", "fast"]
    )
    bad_queue = runner.invoke(
        main, ["staffing", "forecast", "--traffic", str(traffic), "--queue", "NW"]
    )
    outside = ["--days", "2026-11-08", *TWICE, "2026-12-14"]
    bad_day = runner.invoke(main, ["staffing", "forecast", "--traffic", str(traffic), *outside])

    assert bad_target.exit_code == 2
    assert "target 'fast'" in bad_target.output
    assert bad_queue.exit_code == 2
    assert "no call in queue 'NW'" in bad_queue.output
    assert bad_day.exit_code == 2
    assert "2026-12-14: not a day of the forecast" in bad_day.output


def test_plan_with_a_confidence_staffs_more_and_says_how_far_the_forecast_errs(
    tmp_path: Path,
) -> None:
    traffic = _traffic(tmp_path / "calls.csv")
    day = ["staffing", "plan", "--traffic", str(traffic), "--days", "2026-11-23"]
    runner = CliRunner()

    usual = runner.invoke(main, day)
    sure = runner.invoke(main, [*day, "--confidence", "0.9"])

    assert usual.exit_code == 0, usual.output
    assert sure.exit_code == 0, sure.output
    assert "probability 0.9" in sure.output
    assert "probability" not in usual.output
    assert "chance" in sure.output
    assert "chance" not in usual.output
    chances = [
        int(line.split()[9].rstrip("%"))
        for line in sure.output.splitlines()
        if line.startswith("2026-11-23") and float(line.split()[2]) > 0
    ]
    assert chances
    assert all(chance >= 90 for chance in chances)
    hours = [
        float(r.output.splitlines()[-1].split("Erlang A ")[1].split()[0]) for r in (usual, sure)
    ]
    assert hours[1] > hours[0]


@pytest.mark.parametrize("confidence", ["0", "1", "1.5", "-0.1", "ninety"])
def test_a_confidence_outside_zero_to_one_is_refused(tmp_path: Path, confidence: str) -> None:
    traffic = _traffic(tmp_path / "calls.csv", weeks=1)

    result = CliRunner().invoke(
        main, ["staffing", "plan", "--traffic", str(traffic), "--confidence", confidence]
    )

    assert result.exit_code == 2
    assert "--confidence" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def bank() -> Path:
    if not BANK.is_file():
        pytest.skip(f"shared data not present: {BANK}")
    return BANK


def test_the_banks_monday_needs_fewer_agent_hours_under_erlang_a(bank: Path) -> None:
    result = CliRunner().invoke(
        main, ["staffing", "plan", "--traffic", str(bank), "--days", "1999-08-23", "--weeks", "3"]
    )

    assert result.exit_code == 0, result.output
    summary = result.output.splitlines()[-1].replace(",", "").split()
    erlang_c, erlang_a = float(summary[7]), float(summary[10])
    assert erlang_a < erlang_c


async def _crm_calls(folder: Path) -> None:
    """Two weeks of CRM interactions, ten a day at 9:00-9:59 Shanghai time, one in five
    abandoned after a minute."""
    async with blank_crm(folder) as crm, crm() as session, session.begin():
        for n in range(14 * 10):
            day, k = divmod(n, 10)
            arrived = datetime(2026, 11, 30, 9, 5 * k, tzinfo=SHANGHAI) + timedelta(days=day)
            minute = timedelta(minutes=1)
            answered = None if k % 5 == 0 else arrived + timedelta(seconds=20)
            session.add(
                Interaction(
                    external_key=f"pbx1:{n}",
                    queue="sales",
                    arrived_at=arrived.astimezone(UTC),
                    queued_at=arrived.astimezone(UTC),
                    answered_at=answered,
                    ended_at=answered + timedelta(seconds=180) if answered else arrived + minute,
                )
            )


def test_the_crm_history_and_the_calendars_holidays(tmp_path: Path) -> None:
    asyncio.run(_crm_calls(tmp_path))
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "calendar.yaml").write_text(
        "timezone: Asia/Shanghai\nholidays: [2026-12-15]\n", encoding="utf-8"
    )
    env = {
        "CTI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}",
        "CTI_IVR__FLOWS_DIR": str(flows),
    }

    result = CliRunner().invoke(
        main,
        ["staffing", "forecast", "--queue", "sales", "--days", "2026-12-14..2026-12-15"],
        env=env,
    )

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("2026-12")]
    assert {(cells[0], cells[1]) for cells in rows} == {
        ("2026-12-14", "09:00"),
        ("2026-12-14", "09:30"),
    }
    assert sum(float(cells[2]) for cells in rows) == pytest.approx(10)  # the Monday before
    assert "2026-12-15" not in result.output  # a holiday: nobody is expected


def test_plan_replays_the_recorded_calls_with_the_planned_agents(tmp_path: Path) -> None:
    traffic = _traffic(tmp_path / "calls.csv")
    days = ["--days", "2026-11-21"]  # a day of the file: its calls are replayed

    result = CliRunner().invoke(
        main,
        ["staffing", "plan", "--traffic", str(traffic), *days, "--replay", "bank-fifo"],
    )
    without_traffic = CliRunner().invoke(main, ["staffing", "plan", "--replay", "bank-fifo"])

    assert result.exit_code == 0, result.output
    rows = [line.split("|") for line in result.output.splitlines() if line.startswith("2026-11-21")]
    replayed = [cells[-1].split() for cells in rows]
    assert sum(int(calls) for calls, _ in replayed) == 120  # every call of the day, where it came
    assert "replay" in result.output.splitlines()[1]
    assert without_traffic.exit_code == 2
    assert "--replay replays recorded calls: give them with --traffic" in without_traffic.output
