"""A plan beside its what-if: the rows and how the planned agents do, then the what-if's rows
and how the agents left do with its calls.

The what-if keeps the plan's agents (Erlang A's), minus ``fewer`` from ``since``: "four out
from 14:00" and "the mailing doubles Monday's calls" both ask what the agents scheduled for the
usual day would then give; the what-if's own rows say what it would need instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time

from cti_server.staffing.forecast import Forecast
from cti_server.staffing.patience import fit_exponential
from cti_server.staffing.plan import Outcome, Row, Staffing, fewer, on_the_phones, outcomes, plan
from cti_server.staffing.plan import scale as scaled


@dataclass(frozen=True, slots=True)
class WhatIf:
    scale: float | None = None
    """Offered calls times this (on ``on``, or every day)."""
    fewer: int | None = None
    """Agents fewer than the plan from ``since`` (on ``on``, or every day)."""
    since: time = time(0)
    on: date | None = None

    @property
    def asked(self) -> bool:
        return self.scale is not None or self.fewer is not None


@dataclass(frozen=True, slots=True)
class Comparison:
    """One entry per interval in each list, in the forecast's order."""

    rows: list[Row]
    base: list[Outcome]
    changed: list[Row]
    after: list[Outcome]


def compare(forecast: Forecast, queue: str, staffing: Staffing, what_if: WhatIf) -> Comparison:
    """The plan of ``queue`` and the same agents under ``what_if`` (raises StaffingError)."""
    rows = plan(forecast, queue, staffing)
    staffed = on_the_phones(rows)
    changed = rows
    if what_if.scale is not None:
        changed = plan(scaled(forecast, what_if.scale, on=what_if.on), queue, staffing)
    available = staffed
    if what_if.fewer is not None:
        available = fewer(staffed, what_if.fewer, since=what_if.since, on=what_if.on)
    return Comparison(
        rows,
        outcomes(rows, staffed, staffing, forecast.minutes),
        changed,
        outcomes(changed, available, staffing, forecast.minutes),
    )


def patience_of(waits: Iterable[tuple[float, bool]]) -> float:
    """Mean patience from (wait, hung up) pairs; infinite (Erlang A is Erlang C) when nobody
    hung up or nobody waited: no evidence that callers leave."""
    listed = list(waits)
    return fit_exponential(listed).mean_s if listed else math.inf
