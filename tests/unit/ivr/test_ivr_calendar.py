"""Business hours, holidays and time of day for IVR branches."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cti_server.asterisk.data import data_dir
from cti_server.ivr.calendar import Calendar, CalendarError, load_calendar
from cti_server.ivr.engine import IvrEngine, Recording
from cti_server.ivr.flow import load_flow
from cti_server.speech.heard import Heard

OFFICE = Calendar(
    timezone="Asia/Shanghai",
    hours={"mon": ["09:00-12:00", "13:00-18:00"], "sat": ["10:00-14:00"]},
    holidays=[date(2026, 10, 1)],
)


@pytest.mark.parametrize(
    ("utc", "open_now", "time_of_day"),
    [
        (datetime(2026, 11, 23, 2, 0, tzinfo=UTC), "yes", "morning"),  # Mon 10:00 in Shanghai
        (datetime(2026, 11, 23, 4, 30, tzinfo=UTC), "no", "afternoon"),  # Mon 12:30: lunch
        (datetime(2026, 11, 23, 10, 0, tzinfo=UTC), "no", "evening"),  # Mon 18:00: closed
        (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), "yes", "morning"),  # Sat 11:00
        (datetime(2026, 11, 29, 3, 0, tzinfo=UTC), "no", "morning"),  # Sunday
    ],
)
def test_opening_hours_in_the_centres_time_zone(
    utc: datetime, open_now: str, time_of_day: str
) -> None:
    attributes = OFFICE.attributes(utc)
    assert attributes["business_hours"] == open_now
    assert attributes["time_of_day"] == time_of_day


def test_a_holiday_is_closed_whatever_the_hours() -> None:
    national_day = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)  # a Thursday, 10:00 in Shanghai
    attributes = Calendar(timezone="Asia/Shanghai", holidays=[date(2026, 10, 1)]).attributes(
        national_day
    )
    assert (attributes["holiday"], attributes["business_hours"]) == ("yes", "no")
    assert attributes["weekday"] == "thu"


def test_the_shipped_calendar_is_open_around_the_clock() -> None:
    calendar = load_calendar(data_dir("ivr_flows") / "calendar.yaml")
    for hour in range(24):
        moment = datetime(2026, 11, 23, hour, 30, tzinfo=UTC)
        assert calendar.attributes(moment)["business_hours"] == "yes"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("timezone: Mars/Olympus\n", "unknown time zone"),
        ("hours: {funday: ['09:00-17:00']}\n", "unknown days"),
        ("hours: {mon: ['9-5']}\n", "hours.mon.0"),
        ("holidays: [not-a-date]\n", "holidays.0"),
    ],
)
def test_a_broken_calendar_names_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError, match=problem):
        load_calendar(path)


def test_no_calendar_means_always_open(tmp_path: Path) -> None:
    calendar = load_calendar(tmp_path / "calendar.yaml")
    assert calendar.attributes(datetime(2026, 1, 1, 3, tzinfo=UTC))["business_hours"] == "yes"


class _SilentChannel:
    """A caller who never presses anything; records what was played."""

    def __init__(self) -> None:
        self.played: list[str] = []

    async def play(self, prompt: str, language: str, escape: str = "") -> str:
        self.played.append(prompt)
        return ""

    async def read_key(self, timeout: float) -> str:
        return ""

    def understands(self, language: str) -> bool:
        return True

    async def ask(self, prompt: str, language: str, escape: str, timeout: float) -> str:
        return await self.play(prompt, language, escape)

    async def read_digits(self, prompt: str, language: str, max_digits: int, timeout: float) -> str:
        return ""

    async def set_variable(self, name: str, value: str) -> None:
        return None

    async def record(self, name: str, max_seconds: float, silence_seconds: float) -> Recording:
        return Recording("", 0.0)

    async def say(self, kind: str, value: str, language: str) -> None:
        return None

    async def listen(self, words: Mapping[str, str], language: str, timeout: float) -> Heard:
        return Heard("")


async def _nobody(_number: str) -> None:
    return None


@pytest.mark.asyncio
@pytest.mark.parametrize(("hour_utc", "outcome"), [(2, "transfer"), (14, "hangup")])
async def test_a_flow_branches_on_business_hours(
    tmp_path: Path, hour_utc: int, outcome: str
) -> None:
    flow_file = tmp_path / "hours.yaml"
    flow_file.write_text(
        """
name: hours
languages: [en]
start: check
steps:
  check:
    type: branch
    conditions: [{attribute: business_hours, one_of: ["no"], goto: closed}]
    default: queue
  closed: {type: hangup, prompt: goodbye}
  queue: {type: transfer, queue: support}
""",
        encoding="utf-8",
    )
    flow = load_flow(flow_file)
    moment = datetime(2026, 11, 23, hour_utc, 0, tzinfo=UTC)  # Monday, 10:00 or 22:00 Shanghai
    channel = _SilentChannel()
    result = await IvrEngine(_nobody, _nobody).run(
        flow, channel, "+8613800138000", known=OFFICE.attributes(moment)
    )
    assert result.outcome == outcome
    assert channel.played == ([] if outcome == "transfer" else ["goodbye"])
