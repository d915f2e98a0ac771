"""The charts count the contact center's day and weeks, not UTC's: a call at 01:00 in Shanghai
(17:00 UTC the day before) is in today's 01:00 slot there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pydantic
import pytest
import pytest_asyncio

from agent_ui import charts
from crm_core.models import Interaction
from cti_server.config import UiSettings
from tests.support.blank_crm import Sessions, blank_crm

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=SHANGHAI)  # Monday morning there, Monday 01:30 UTC


@pytest_asyncio.fixture
async def crm(tmp_path: Path) -> AsyncIterator[Sessions]:
    async with blank_crm(tmp_path) as sessions:
        yield sessions


async def _calls(crm: Sessions, *arrivals: datetime) -> None:
    async with crm() as session, session.begin():
        for n, arrived in enumerate(arrivals):
            at = arrived.astimezone(UTC)
            session.add(
                Interaction(
                    external_key=f"pbx1:{n}",
                    arrived_at=at,
                    queued_at=at,
                    answered_at=at + timedelta(seconds=10),
                )
            )


@pytest.mark.asyncio
async def test_the_day_begins_at_the_centres_midnight(crm: Sessions) -> None:
    night = datetime(2026, 12, 7, 1, 5, tzinfo=SHANGHAI)  # 2026-12-06 17:05 UTC
    yesterday = datetime(2026, 12, 6, 23, 50, tzinfo=SHANGHAI)
    await _calls(crm, night, yesterday, NOW - timedelta(minutes=10))
    local = await charts.day_series(crm, NOW, 20, SHANGHAI)
    assert local.calls[4] == 1  # 01:00-01:15 there
    assert local.calls[37] == 1  # 09:15-09:30
    assert sum(local.calls) == 2  # yesterday's 23:50 is not today
    assert charts.bars(local)["title"] == "Calls per 15 minutes (Asia/Shanghai)"
    in_utc = await charts.day_series(crm, NOW, 20)  # Monday 00:00 UTC on: only the 09:20 call
    assert sum(in_utc.calls) == 1


def test_weeks_begin_on_the_centres_monday() -> None:
    sunday_night_utc = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)  # Monday 01:00 in Shanghai
    first = datetime(2026, 11, 30, 12, tzinfo=UTC)
    local = dict(charts.weekly(first, NOW, [sunday_night_utc], SHANGHAI))
    assert local == {"11-30": 0, "12-07": 1}
    assert dict(charts.weekly(first, NOW, [sunday_night_utc]))["11-30"] == 1


def test_a_time_zone_that_does_not_exist_is_refused() -> None:
    assert UiSettings(time_zone="Asia/Shanghai").time_zone == "Asia/Shanghai"
    with pytest.raises(pydantic.ValidationError, match="unknown time zone"):
        UiSettings(time_zone="Mars/Olympus")


def test_bar_labels_never_run_into_their_neighbours() -> None:
    counts = [(f"a long category name {n}", n) for n in range(12)]
    chart = charts.labelled_bars("Complaints", counts)
    ticks = cast(list[dict[str, Any]], chart["ticks"])
    step = float(ticks[1]["x"]) - float(ticks[0]["x"])
    assert all(len(t["label"]) * charts.CHAR_WIDTH <= step for t in ticks)
    assert ticks[0]["label"].endswith("…")
    bars = cast(list[dict[str, Any]], chart["bars"])
    assert bars[0]["label"] == "a long category name 1: 1"  # the whole name in the tooltip
    short = charts.labelled_bars("Complaints", [("staff", 2), ("billing", 1)])
    assert [t["label"] for t in cast(list[dict[str, Any]], short["ticks"])] == ["staff", "billing"]
