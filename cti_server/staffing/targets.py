"""What a supervisor asks of a queue, and the fewest agents that give it.

A target is one of: a service level (``share`` of callers answered within ``within_s``), an
average speed of answer, or an abandon rate. The agents needed are the fewest on the phones
(Erlang C or Erlang A, :class:`~cti_server.staffing.erlang.Queue`) that meet it; shrinkage
(breaks, training, absence: the share of paid time not on the phones) turns them into the
agents to schedule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cti_server.staffing.erlang import Queue, StaffingError


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    share: float
    """Of all callers offered, those who hang up included."""
    within_s: float

    def met(self, queue: Queue) -> bool:
        return queue.service_level(self.within_s) >= self.share

    def __str__(self) -> str:
        return f"{self.share:.0%} in {self.within_s:g} s"


@dataclass(frozen=True, slots=True)
class AverageSpeedOfAnswer:
    seconds: float

    def met(self, queue: Queue) -> bool:
        return queue.asa <= self.seconds

    def __str__(self) -> str:
        return f"ASA {self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class AbandonRate:
    share: float

    def met(self, queue: Queue) -> bool:
        return queue.abandon_rate <= self.share

    def __str__(self) -> str:
        return f"abandon {self.share:.0%}"


Target = ServiceLevel | AverageSpeedOfAnswer | AbandonRate

_TARGET = re.compile(
    r"^(?:(?P<share>\d+(?:\.\d+)?)%/(?P<within>\d+(?:\.\d+)?)s"
    r"|asa:(?P<asa>\d+(?:\.\d+)?)s?"
    r"|abandon:(?P<abandon>\d+(?:\.\d+)?)%)$"
)


def parse_target(spec: str) -> Target:
    """``80%/20s`` (service level), ``asa:30s`` or ``abandon:5%``."""
    match = _TARGET.match(spec.strip().lower())
    if match is None:
        raise StaffingError(f"target {spec!r}: expected 80%/20s, asa:30s or abandon:5%")
    if match["share"] is not None:
        share = float(match["share"]) / 100
        if not 0 < share < 1:
            raise StaffingError(f"target {spec!r}: the share must be above 0 % and below 100 %")
        return ServiceLevel(share, float(match["within"]))
    if match["asa"] is not None:
        return AverageSpeedOfAnswer(float(match["asa"]))
    share = float(match["abandon"]) / 100
    if not 0 < share < 1:
        raise StaffingError(f"target {spec!r}: the share must be above 0 % and below 100 %")
    return AbandonRate(share)


def agents_needed(
    calls_per_s: float,
    handle_s: float,
    target: Target,
    *,
    patience_s: float | None = None,
    max_occupancy: float | None = None,
) -> int:
    """The fewest agents on the phones that meet ``target``: Erlang C when ``patience_s`` is
    None, Erlang A otherwise; no more busy than ``max_occupancy`` if given."""
    if calls_per_s == 0:
        return 0
    load = calls_per_s * handle_s
    floor = math.ceil(load / max_occupancy) if max_occupancy else 0
    agents = max(floor, math.floor(load) + 1 if patience_s is None else 1)
    ceiling = agents + 50 + int(10 * math.sqrt(load))
    while agents <= ceiling:
        if target.met(Queue(calls_per_s, handle_s, agents, patience_s)):
            return agents
        agents += 1
    raise StaffingError(f"target {target}: not met with {ceiling} agents for {load:.1f} erlangs")


def scheduled(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that ``agents`` are on the phones after ``shrinkage``."""
    if not 0 <= shrinkage < 1:
        raise StaffingError(f"shrinkage {shrinkage}: expected 0 <= shrinkage < 1")
    return math.ceil(agents / (1 - shrinkage) - 1e-9)
