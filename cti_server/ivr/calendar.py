"""Business hours and holidays, so flows can branch on them (``business_hours``, ``holiday``,
``time_of_day``, ``weekday`` attributes, set before a flow starts)."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cti_server.config import TimeZoneName

CALENDAR_FILE = "calendar.yaml"  # beside the flows
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Span = Annotated[str, Field(pattern=_SPAN.pattern)]


class CalendarError(ValueError):
    """A calendar file that cannot be used; the message names the file and the problem."""


class Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimeZoneName = "UTC"
    hours: dict[str, list[Span]] = Field(
        default_factory=lambda: {day: ["00:00-24:00"] for day in WEEKDAYS}
    )
    holidays: list[date] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _days(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = set(value) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown days {sorted(unknown)}: use {', '.join(WEEKDAYS)}")
        return value

    def attributes(self, now: datetime) -> dict[str, str]:
        """What a flow may branch on, for a call arriving at ``now`` (timezone-aware)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        weekday = WEEKDAYS[local.weekday()]
        holiday = local.date() in self.holidays
        open_now = not holiday and any(
            _within(span, local.time()) for span in self.hours.get(weekday, [])
        )
        return {
            "business_hours": "yes" if open_now else "no",
            "holiday": "yes" if holiday else "no",
            "weekday": weekday,
            "time_of_day": _time_of_day(local.hour),
        }


def _within(span: str, moment: time) -> bool:
    match = _SPAN.match(span)
    assert match is not None  # validated by the model
    start = int(match.group(1)) * 60 + int(match.group(2))
    end = int(match.group(3)) * 60 + int(match.group(4))
    minute = moment.hour * 60 + moment.minute
    return start <= minute < end


def _time_of_day(hour: int) -> str:
    if 6 <= hour < 12:
        return "morning"
    if 12 <= hour < 18:
        return "afternoon"
    if 18 <= hour < 22:
        return "evening"
    return "night"


def load_calendar(path: Path) -> Calendar:
    """``calendar.yaml`` beside the flows; none means open around the clock."""
    if not path.exists():
        return Calendar()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Calendar.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise CalendarError(f"{path.name}: {exc}") from None
