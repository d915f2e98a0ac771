"""Charts of the day as server-rendered SVG: calls per 15 minutes, service level over the day.

Read from the CRM's interactions (every call of every process is there), drawn with a jinja2
template: no charting library, nothing runs in the browser, labels escaped like every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import Interaction

SLOT = timedelta(minutes=15)
SLOTS = 96


@dataclass(frozen=True)
class DaySeries:
    """Per 15-minute slot of the contact center's day: calls that arrived, and the service level
    so far. Slots are by the local clock (a day that changes to or from summer time repeats or
    skips an hour of them)."""

    start: datetime  # local midnight
    calls: list[int]
    service_level: list[float | None]  # share answered within the target, None before any call


def midnight(now: datetime, zone: tzinfo) -> datetime:
    """The start of ``now``'s day where the contact center is."""
    return now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)


def _slot(moment: datetime, zone: tzinfo) -> int:
    local = moment.astimezone(zone)
    return min((local.hour * 60 + local.minute) // 15, SLOTS - 1)


async def day_series(
    db: async_sessionmaker[AsyncSession],
    now: datetime,
    service_level_seconds: int,
    zone: tzinfo = UTC,
) -> DaySeries:
    start = midnight(now, zone)
    async with db() as session:
        rows = (
            await session.execute(
                select(
                    Interaction.arrived_at,
                    Interaction.queued_at,
                    Interaction.answered_at,
                    Interaction.kind,
                ).where(Interaction.arrived_at >= start.astimezone(UTC))
            )
        ).all()
    calls = [0] * SLOTS
    within = [0] * SLOTS
    ended = [0] * SLOTS
    for stored, queued, answered, kind in rows:
        if stored is None:
            continue
        arrived = stored if stored.tzinfo else stored.replace(tzinfo=UTC)  # SQLite: naive UTC
        if arrived < start:
            continue
        slot = _slot(arrived, zone)
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
    current = _slot(now, zone)
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
        "title": f"Calls per 15 minutes ({_zone_name(series)})",
        "bars": [
            {
                "x": round(i * step, 1),
                "y": round(plot - n / top * plot, 1),
                "w": round(step - 1, 1),
                "h": round(n / top * plot, 1),
                "label": f"{_clock(i)}: {n}",
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
            "label": f"{_clock(i + 1)}: {value:.0%}",
        }
        for i, value in enumerate(series.service_level)
        if value is not None
    ]
    points = " ".join(f"{dot['x']},{dot['y']}" for dot in dots)
    return {
        "width": width,
        "height": height,
        "title": f"Service level so far today ({_zone_name(series)})",
        "bars": [],
        "points": points,
        "dots": dots,
        "ticks": _ticks(width),
        "top_label": "100 %",
    }


def _clock(slot: int) -> str:
    minutes = slot * 15
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _zone_name(series: DaySeries) -> str:
    return str(series.start.tzinfo)


def _ticks(width: int) -> list[dict[str, object]]:
    return [{"x": round(width * hour / 24, 1), "label": f"{hour:02d}"} for hour in range(0, 24, 3)]


def weekly(
    first: datetime, last: datetime, moments: list[datetime], zone: tzinfo = UTC
) -> list[tuple[str, int]]:
    """Counts per week (weeks start on Monday, at the contact center's midnight) from
    ``first``'s week to ``last``'s, at most a year of them (the latest)."""
    monday = _monday(first, zone)
    end = _monday(last, zone)
    if (end - monday).days > 7 * 52:
        monday = end - timedelta(weeks=52)
    counts: dict[datetime, int] = {}
    week = monday
    while week <= end:
        counts[week] = 0
        week += timedelta(weeks=1)
    for moment in moments:
        key = _monday(moment if moment.tzinfo else moment.replace(tzinfo=UTC), zone)
        if key in counts:
            counts[key] += 1
    return [(f"{week:%m-%d}", n) for week, n in counts.items()]


def _monday(moment: datetime, zone: tzinfo) -> datetime:
    day = midnight(moment, zone)
    return (day - timedelta(days=day.weekday())).replace(tzinfo=None)  # a calendar date


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
            {"x": round(i * step + 2, 1), "label": _fit(label, step)}
            for i, (label, _) in enumerate(counts)
        ],
        "top_label": f"{top}",
    }


CHAR_WIDTH = 6.0  # px of a character at the charts' 10 px sans-serif, a wide one


def _fit(label: str, room: float) -> str:
    """``label`` cut to the room under its bar, so that neighbours never overlap; the whole
    label stays in the bar's tooltip."""
    fits = max(1, int((room - 4) / CHAR_WIDTH))
    return label if len(label) <= fits else label[: fits - 1] + "…"
