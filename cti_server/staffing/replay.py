"""A staffing proved on recorded calls: replayed through the routing simulator.

The Erlang models assume Poisson arrivals, exponential handle and patience times and a steady
state in every interval; the centre has none of these. Replaying the recorded calls (their
arrival times, handle times and patience, :mod:`cti_server.routing.traffic`) with the planned
number of agents on duty in each interval (:func:`cti_server.routing.simulator.replay`, the
live router's decision core) says what callers would have got: per interval of arrival, the
share answered within the threshold, the ASA and the abandon rate.

The agents are generic (every service type at one level): a plan counts agents per queue, not
who has which skill. An agent whose interval ends during a call finishes it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from cti_server.routing.policy import Policy
from cti_server.routing.simulator import GENERIC_LEVEL, replay
from cti_server.routing.traffic import Shift, Traffic
from cti_server.staffing.targets import AverageSpeedOfAnswer, ServiceLevel, Target


@dataclass
class Reached:
    """What the callers who arrived in one interval got."""

    offered: int = 0
    quick: int = 0
    """Answered within the threshold."""
    answered: int = 0
    waited_s: float = 0.0
    """Seconds waited by those answered."""

    def add(self, wait: float, answered: bool, threshold: float) -> None:
        self.offered += 1
        self.answered += answered
        self.quick += answered and wait <= threshold
        self.waited_s += wait if answered else 0.0

    def __add__(self, other: Reached) -> Reached:
        return Reached(
            self.offered + other.offered,
            self.quick + other.quick,
            self.answered + other.answered,
            self.waited_s + other.waited_s,
        )

    @property
    def service_level(self) -> float:
        return self.quick / self.offered if self.offered else math.nan

    @property
    def abandon_rate(self) -> float:
        return 1 - self.answered / self.offered if self.offered else math.nan

    @property
    def asa(self) -> float:
        return self.waited_s / self.answered if self.answered else math.nan

    def met(self, target: Target) -> bool:
        """``target`` measured on these callers (no caller: met)."""
        if not self.offered:
            return True
        if isinstance(target, ServiceLevel):
            return self.service_level >= target.share
        if isinstance(target, AverageSpeedOfAnswer):
            return not self.answered or self.asa <= target.seconds
        return self.abandon_rate <= target.share


def roster(
    agents: Mapping[datetime, int], first_day: date, minutes: int, kinds: list[str]
) -> tuple[list[Shift], dict[str, dict[str, int]]]:
    """Shifts that put ``agents[start]`` generic agents on duty in each interval: agent ``i``
    is on in every interval that has more than ``i``, consecutive intervals merged."""
    midnight = datetime.combine(first_day, datetime.min.time())
    length = timedelta(minutes=minutes)
    most = max(agents.values(), default=0)
    names = [f"agent-{i + 1:03d}" for i in range(most)]
    shifts: list[Shift] = []
    for index, name in enumerate(names):
        spans: list[list[datetime]] = []
        for start in sorted(s for s, n in agents.items() if n > index):
            if spans and spans[-1][1] == start:
                spans[-1][1] = start + length
            else:
                spans.append([start, start + length])
        shifts += [
            Shift(name, (a - midnight).total_seconds(), (b - midnight).total_seconds())
            for a, b in spans
        ]
    return shifts, {name: dict.fromkeys(kinds, GENERIC_LEVEL) for name in names}


def replay_staffing(
    traffic: Traffic,
    first_day: date,
    agents: Mapping[datetime, int],
    policy: Policy,
    *,
    minutes: int,
    threshold: float,
) -> dict[datetime, Reached]:
    """``traffic`` (its arrivals counted in seconds from ``first_day``'s midnight, as
    :func:`~cti_server.routing.traffic.load_traffic` gives them) replayed with ``agents`` on
    duty per interval: what the callers of each interval got."""
    kinds = sorted({c.kind for c in traffic.calls})
    shifts, skills = roster(agents, first_day, minutes, kinds)
    staffed = replace(traffic, shifts=tuple(shifts), skills=skills)
    midnight = datetime.combine(first_day, datetime.min.time())
    reached: defaultdict[datetime, Reached] = defaultdict(Reached)
    for call, wait, answered in replay(staffed, policy):
        moment = midnight + timedelta(seconds=call.arrival)
        start = moment.replace(
            minute=moment.minute - moment.minute % minutes, second=0, microsecond=0
        )
        reached[start].add(wait, answered, threshold)
    return dict(reached)
