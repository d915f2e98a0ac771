"""The staffing page's charts: the what-if drawn beside the plan only where it differs in kind
(calls bars only when the calls were scaled), every shape inside the chart, zero-call
intervals left out of the service level."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent_ui.staffing_charts import HEIGHT, WIDTH, plan_charts
from cti_server.control.staffing import IntervalOut, PlanOut, WhatIfOut

ZONE = ZoneInfo("Asia/Shanghai")


def _plan(scale: float | None, fewer: int | None) -> PlanOut:
    midnight = datetime(2026, 12, 14, tzinfo=ZONE)
    rows = []
    for n in range(48):
        offered = 20.0 if 16 <= n < 36 else 0.0
        agents = 5 if offered else 0
        left = max(0, agents - (fewer or 0)) if n >= 28 else agents
        rows.append(
            IntervalOut(
                start=midnight + timedelta(minutes=30 * n),
                offered=offered,
                handle_s=180.0,
                erlang_c=agents + 1 if offered else 0,
                erlang_a=agents,
                scheduled_c=agents + 2,
                scheduled_a=agents + 2,
                service_level=0.85 if offered else 1.0,
                abandon_rate=0.02,
                asa_s=5.0,
                met=True,
                what_if=WhatIfOut(
                    offered=offered * (scale or 1),
                    agents=left,
                    erlang_a=agents,
                    service_level=0.85 if left == agents else 0.3,
                    abandon_rate=0.02,
                    asa_s=5.0,
                    met=left == agents,
                ),
            )
        )
    return PlanOut(
        queue="support",
        queues=["all", "support"],
        days=[date(2026, 12, 14)],
        interval=30,
        time_zone=str(ZONE),
        target="80% in 20 s",
        shrinkage=0.3,
        patience_s=300.0,
        history_first=None,
        history_last=None,
        what_if="what-if",
        intervals=rows,
        agent_hours_c=0.0,
        agent_hours_a=0.0,
        scheduled_hours_a=0.0,
        what_if_missed=0,
    )


def _keys(chart: dict[str, object]) -> list[str]:
    series = chart["series"]
    assert isinstance(series, list)
    return [s["key"] for s in series]


def test_fewer_agents_add_lines_not_bars_and_scaled_calls_add_bars() -> None:
    fewer = plan_charts(_plan(None, 2))
    assert _keys(fewer["offered"]) == ["offered"]
    assert _keys(fewer["agents"]) == ["erlang-c", "erlang-a", "scheduled", "agents-what-if"]
    assert _keys(fewer["service_level"]) == ["service-level", "service-level-what-if"]
    scaled = plan_charts(_plan(2.0, None))
    assert _keys(scaled["offered"]) == ["offered", "offered-what-if"]


def test_every_shape_is_inside_the_chart_and_empty_intervals_have_no_service_level() -> None:
    charts = plan_charts(_plan(2.0, 2))
    for chart in charts.values():
        series = chart["series"]
        assert isinstance(series, list)
        for one in series:
            for bar in one["bars"]:
                assert bar["x"] >= 0
                assert bar["x"] + bar["w"] <= WIDTH + 0.5
                assert bar["y"] >= 0
                assert bar["y"] + bar["h"] <= HEIGHT - 20 + 0.5
            points = [tuple(map(float, p.split(","))) for p in one["points"].split()]
            assert all(0 <= x <= WIDTH and 0 <= y <= HEIGHT - 20 for x, y in points)
    level = charts["service_level"]["series"]
    assert isinstance(level, list)
    assert len(level[0]["points"].split()) == 20  # the 20 intervals with calls
    after_two = [float(p.split(",")[1]) for p in level[1]["points"].split()][12:]
    before_two = [float(p.split(",")[1]) for p in level[0]["points"].split()][12:]
    assert all(a > b for a, b in zip(after_two, before_two, strict=True))  # lower on the chart
