"""Charts of the day as server-rendered SVG: calls per 15 minutes, service level over the day.

Read from the CRM's interactions (every call of every process is there), drawn with a jinja2
template: no charting library, nothing runs in the browser, labels escaped like every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import Interaction

SLOT = timedelta(minutes=15)
SLOTS = 96


@dataclass(frozen=True)
class DaySeries:
    """Per 15-minute slot of the (UTC) day: calls that arrived, and the service level so far."""

    start: datetime
    calls: list[int]
    service_level: list[float | None]  # share answered within the target, None before any call


async def day_series(
    db: async_sessionmaker[AsyncSession], now: datetime, service_level_seconds: int
) -> DaySeries:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with db() as session:
        rows = (
            await session.execute(
                select(
                    Interaction.arrived_at,
                    Interaction.queued_at,
                    Interaction.answered_at,
                    Interaction.kind,
                ).where(Interaction.arrived_at >= start)
            )
        ).all()
    calls = [0] * SLOTS
    within = [0] * SLOTS
    ended = [0] * SLOTS
    for arrived, queued, answered, kind in rows:
        if arrived is None:
            continue
        slot = min(int((arrived - start) / SLOT), SLOTS - 1)
        calls[slot] += 1
        if queued is None:
            continue
        if answered is not None:
            ended[slot] += 1
            within[slot] += (answered - queued).total_seconds() <= service_level_seconds
        elif kind == "abandoned":
            ended[slot] += 1
    level: list[float | None] = []
    total_within = total_ended = 0
    current = int((now.astimezone(UTC) - start) / SLOT)
    for slot in range(SLOTS):
        total_within += within[slot]
        total_ended += ended[slot]
        level.append(total_within / total_ended if total_ended and slot <= current else None)
    return DaySeries(start, calls, level)


def bars(series: DaySeries, width: int = 640, height: int = 160) -> dict[str, object]:
    """Geometry of the calls-per-slot bar chart, for ``chart.svg``."""
    top = max(series.calls) or 1
    step = width / SLOTS
    plot = height - 20
    return {
        "width": width,
        "height": height,
        "title": "Calls per 15 minutes (UTC)",
        "bars": [
            {
                "x": round(i * step, 1),
                "y": round(plot - n / top * plot, 1),
                "w": round(step - 1, 1),
                "h": round(n / top * plot, 1),
                "label": f"{(series.start + i * SLOT):%H:%M}: {n}",
            }
            for i, n in enumerate(series.calls)
            if n
        ],
        "points": "",
        "dots": [],
        "ticks": _ticks(width),
        "top_label": f"{top}",
    }


def line(series: DaySeries, width: int = 640, height: int = 160) -> dict[str, object]:
    """Geometry of the service-level line, for ``chart.svg``."""
    step = width / SLOTS
    plot = height - 20
    dots = [
        {
            "x": round(i * step + step / 2, 1),
            "y": round(plot - value * plot, 1),
            "label": f"{(series.start + (i + 1) * SLOT):%H:%M}: {value:.0%}",
        }
        for i, value in enumerate(series.service_level)
        if value is not None
    ]
    points = " ".join(f"{dot['x']},{dot['y']}" for dot in dots)
    return {
        "width": width,
        "height": height,
        "title": "Service level so far today (UTC)",
        "bars": [],
        "points": points,
        "dots": dots,
        "ticks": _ticks(width),
        "top_label": "100 %",
    }


def _ticks(width: int) -> list[dict[str, object]]:
    return [{"x": round(width * hour / 24, 1), "label": f"{hour:02d}"} for hour in range(0, 24, 3)]


def weekly(first: datetime, last: datetime, moments: list[datetime]) -> list[tuple[str, int]]:
    """Counts per week (weeks start on Monday, UTC) from ``first``'s week to ``last``'s, at most
    a year of them (the latest)."""
    monday = _monday(first)
    end = _monday(last)
    if (end - monday).days > 7 * 52:
        monday = end - timedelta(weeks=52)
    counts: dict[datetime, int] = {}
    week = monday
    while week <= end:
        counts[week] = 0
        week += timedelta(weeks=1)
    for moment in moments:
        key = _monday(moment)
        if key in counts:
            counts[key] += 1
    return [(f"{week:%m-%d}", n) for week, n in counts.items()]


def _monday(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def labelled_bars(
    title: str, counts: list[tuple[str, int]], width: int = 640, height: int = 160
) -> dict[str, object]:
    """Geometry of a bar per label (a category, a week), for ``chart.svg``."""
    top = max((n for _, n in counts), default=0) or 1
    step = width / max(1, len(counts))
    base = height - 20  # the axis: the labels go below it
    tall = base - 16  # the title stays above the tallest bar
    return {
        "width": width,
        "height": height,
        "title": title,
        "bars": [
            {
                "x": round(i * step + 2, 1),
                "y": round(base - n / top * tall, 1),
                "w": round(step - 4, 1),
                "h": round(n / top * tall, 1),
                "label": f"{label}: {n}",
            }
            for i, (label, n) in enumerate(counts)
            if n
        ],
        "points": "",
        "dots": [],
        "ticks": [
            {"x": round(i * step + 2, 1), "label": label} for i, (label, _) in enumerate(counts)
        ],
        "top_label": f"{top}",
    }
