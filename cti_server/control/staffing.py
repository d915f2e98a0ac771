"""The staffing plan as the supervisor's page, the wallboard and ``GET /api/staffing/plan`` ask
for it: the question (:class:`PlanQuery`, the API's query parameters), the answer
(:class:`PlanOut`, per interval) and who answers (:class:`StaffingPlans`).

Declared here, answered by ``cti_server.staffing.service`` (the forecast from the CRM's
history, Erlang C and Erlang A): the UI reaches the server only through this package.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

DEFAULT_TARGET = "80/20"
INTERVALS = (15, 30, 60)
_SHORT_TARGET = re.compile(r"^(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_TARGET = re.compile(
    r"^(?:\d+(?:\.\d+)?%/\d+(?:\.\d+)?s|asa:\d+(?:\.\d+)?s?|abandon:\d+(?:\.\d+)?%)$"
)


class PlanRefused(ValueError):
    """A question no plan answers (a queue without history, a what-if day outside the plan);
    ``field`` names the parameter to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class PlanQuery(BaseModel):
    """What a supervisor asks: a queue's plan for a day (or a few) and a target, and a what-if
    (``fewer`` agents from ``from``; calls times ``scale``), on day ``on`` or every day."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, validate_default=True
    )

    queue: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")] = Field(
        "all", description="A queue, or all of them together."
    )
    day: date | None = Field(None, description="The first day planned (default: today).")
    days: int = Field(1, ge=1, le=7, description="How many days from ``day``.")
    target: str = Field(
        DEFAULT_TARGET,
        max_length=24,
        description="80/20 (80 % answered in 20 s; also 80%/20s), asa:30s or abandon:5%.",
    )
    shrinkage: float = Field(
        0.3, ge=0, le=0.95, description="Share of paid time not on the phones."
    )
    interval: int = Field(30, description="Minutes per interval: 15, 30 or 60.")
    patience: float | None = Field(
        None, gt=0, le=86400, description="Callers' mean patience, s (default: fitted)."
    )
    fewer: int | None = Field(
        None, ge=0, le=10000, description="What-if: this many agents fewer than the plan."
    )
    from_: time = Field(time(0), alias="from", description="When ``fewer`` starts (HH:MM).")
    scale: float | None = Field(
        None, ge=0, le=100, description="What-if: offered calls times this factor."
    )
    on: date | None = Field(None, description="The day the what-if applies to (default: all).")
    confidence: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Staff each interval to meet the target with this probability (e.g. 0.9), "
        "counting the forecast's error and the few callers' scatter (default: the server's, "
        "else the models' staffing for the expected calls, met on average).",
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        spec = value.strip().lower()
        short = _SHORT_TARGET.match(spec)
        if short:
            spec = f"{short[1]}%/{short[2]}s"
        if not _TARGET.match(spec):
            raise ValueError("expected 80/20 (a share in % / seconds), asa:30s or abandon:5%")
        return spec

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value not in INTERVALS:
            raise ValueError(f"expected one of {', '.join(map(str, INTERVALS))} minutes")
        return value

    @property
    def asking(self) -> bool:
        """Whether a what-if is asked."""
        return self.fewer is not None or self.scale is not None


class WhatIfOut(BaseModel):
    """One interval under the what-if: the calls then expected, the agents left on the phones
    (the plan's, minus ``fewer``), what Erlang A says they do, and what it would need."""

    offered: float
    agents: int
    erlang_a: int = Field(description="Agents Erlang A needs for the what-if's calls.")
    service_level: float
    abandon_rate: float
    asa_s: float | None = Field(description="None: no agent, callers wait until they hang up.")
    met: bool


class IntervalOut(BaseModel):
    start: datetime = Field(description="Local time of the centre, with its offset.")
    offered: float = Field(description="Forecast offered calls.")
    handle_s: float = Field(description="Forecast handle time, s.")
    erlang_c: int = Field(description="Agents on the phones Erlang C needs.")
    erlang_a: int = Field(description="Agents on the phones Erlang A needs.")
    scheduled_c: int = Field(description="Erlang C's agents after shrinkage.")
    scheduled_a: int = Field(description="Erlang A's agents after shrinkage: to schedule.")
    service_level: float = Field(description="Predicted with Erlang A's agents.")
    abandon_rate: float
    asa_s: float | None
    met: bool
    chance: float | None = Field(
        None,
        description="With a confidence: the probability that Erlang A's agents meet the target "
        "in this interval (None for an ASA target).",
    )
    what_if: WhatIfOut | None = None


class PlanOut(BaseModel):
    queue: str
    queues: list[str] = Field(description="Queues with history, for the next question.")
    days: list[date]
    interval: int
    time_zone: str
    target: str = Field(description="In words, e.g. 80% in 20 s.")
    shrinkage: float
    patience_s: float | None = Field(description="Mean patience; None: nobody hung up.")
    history_first: date | None
    history_last: date | None
    what_if: str | None = Field(description="The what-if in words, None if none was asked.")
    intervals: list[IntervalOut]
    agent_hours_c: float
    agent_hours_a: float
    scheduled_hours_a: float
    what_if_missed: int | None = Field(description="Intervals below the target in the what-if.")
    confidence: float | None = Field(
        None, description="Probability each interval's staffing meets the target; None: on average."
    )
    forecast_error: float | None = Field(
        None,
        description="With a confidence: the forecast's relative error beyond Poisson's, "
        "fitted from the history (0.25: the rate may be 25 % off).",
    )


class StaffingPlans(Protocol):
    """Answers plan questions; raises :class:`PlanRefused` naming the parameter to change."""

    async def plan(self, query: PlanQuery) -> PlanOut: ...
