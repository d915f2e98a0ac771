"""The staffing page's charts as server-rendered SVG (``staffing_chart.svg``), in the
wallboard's style (:mod:`agent_ui.charts`): a chart per question, the plan and its what-if as
series of the same chart, so that they are compared at a glance; every point has its figure in
a tooltip, every label is escaped by the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cti_server.control.staffing import PlanOut

WIDTH = 640
HEIGHT = 180
AXIS = 20  # px under the plot for the ticks
TOP = 18  # px above it for the title and the legend
MAX_TICKS = 12
LEGEND = 78  # px per series in the legend, at the top right

PLAN, WHAT_IF, ERLANG_C, TARGET = "#2f6fb0", "#d9822b", "#8a5cb8", "#9aa5b1"
SCHEDULED = "#2a9d4b"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: list[float | None]
    kind: Literal["bar", "line"]
    colour: str
    dashed: bool = False
    key: str = ""
    """``data-series`` of its shapes (a test finds it)."""


def chart(
    title: str,
    labels: list[str],
    series: list[Series],
    *,
    percent: bool = False,
) -> dict[str, object]:
    """Geometry of ``series`` over intervals named by ``labels``, for ``staffing_chart.svg``."""
    values = [v for s in series for v in s.values if v is not None]
    top = 1.0 if percent else max([*values, 1.0])
    count = max(1, len(labels))
    step = WIDTH / count
    plot = HEIGHT - AXIS - TOP
    bars = [s for s in series if s.kind == "bar"]
    width = max(1.0, (step - 1) / max(1, len(bars)))

    def y(value: float) -> float:
        return round(TOP + plot - value / top * plot, 1)

    def shown(value: float) -> str:
        return f"{value:.0%}" if percent else f"{value:g}"

    drawn = []
    for series_index, one in enumerate(series):
        points = [
            {
                "x": round(i * step + step / 2, 1),
                "y": y(v),
                "label": f"{one.name} {labels[i]}: {shown(round(v, 3))}",
            }
            for i, v in enumerate(one.values)
            if v is not None
        ]
        rects = []
        if one.kind == "bar":
            offset = bars.index(one) * width
            rects = [
                {
                    "x": round(i * step + offset, 1),
                    "y": y(v),
                    "w": round(width, 1),
                    "h": round(v / top * plot, 1),
                    "label": f"{one.name} {labels[i]}: {shown(round(v, 2))}",
                }
                for i, v in enumerate(one.values)
                if v
            ]
        drawn.append(
            {
                "name": one.name,
                "key": one.key or f"s{series_index}",
                "kind": one.kind,
                "colour": one.colour,
                "dash": "5 3" if one.dashed else "",
                "bars": rects,
                "points": " ".join(f"{p['x']},{p['y']}" for p in points),
                "dots": points if one.kind == "line" and len(points) <= 2 * MAX_TICKS * 4 else [],
                "legend_x": WIDTH - LEGEND * (len(series) - series_index),
            }
        )
    every = max(1, -(-count // MAX_TICKS))
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "title": title,
        "top_label": "100 %" if percent else f"{top:g}",
        "series": drawn,
        "ticks": [
            {"x": round(i * step, 1), "label": label}
            for i, label in enumerate(labels)
            if i % every == 0
        ],
    }


def plan_charts(plan: PlanOut) -> dict[str, dict[str, object]]:
    """The three charts of a plan: calls, agents, service level; the what-if in each."""
    rows = plan.intervals
    several_days = len(plan.days) > 1
    labels = [f"{r.start:%a %H:%M}" if several_days else f"{r.start:%H:%M}" for r in rows]
    asked = plan.what_if is not None
    offered = [
        Series("forecast", [r.offered for r in rows], "bar", PLAN, key="offered"),
    ]
    if any(r.what_if and r.what_if.offered != r.offered for r in rows):  # calls scaled
        offered.append(
            Series(
                "what-if",
                [r.what_if.offered if r.what_if else None for r in rows],
                "bar",
                WHAT_IF,
                key="offered-what-if",
            )
        )
    agents = [
        Series("Erlang C", [float(r.erlang_c) for r in rows], "line", ERLANG_C, key="erlang-c"),
        Series("Erlang A", [float(r.erlang_a) for r in rows], "line", PLAN, key="erlang-a"),
        Series(
            "scheduled", [float(r.scheduled_a) for r in rows], "line", SCHEDULED, True, "scheduled"
        ),
    ]
    if asked:
        agents.append(
            Series(
                "what-if",
                [float(r.what_if.agents) if r.what_if else None for r in rows],
                "line",
                WHAT_IF,
                dashed=True,
                key="agents-what-if",
            )
        )
    level = [
        Series(
            "plan",
            [r.service_level if r.offered else None for r in rows],
            "line",
            PLAN,
            key="service-level",
        )
    ]
    if asked:
        level.append(
            Series(
                "what-if",
                [
                    r.what_if.service_level if r.what_if and r.what_if.offered else None
                    for r in rows
                ],
                "line",
                WHAT_IF,
                dashed=True,
                key="service-level-what-if",
            )
        )
    return {
        "offered": chart(f"Forecast calls per {plan.interval} minutes", labels, offered),
        "agents": chart("Agents on the phones", labels, agents),
        "service_level": chart(
            f"Predicted service level ({plan.target})", labels, level, percent=True
        ),
    }
