"""How long callers would wait before hanging up, estimated from recorded waits.

Patience is seen only for callers who hung up (their wait *is* their patience); a caller who
was served had a patience longer than their wait, by an unknown amount (censored). The
choice made here:

* a caller who hung up keeps the recorded wait as their patience;
* a caller who was served gets a patience drawn from a Kaplan-Meier estimate of patience
  (waits of those who hung up are events, waits of those served are censored), conditioned on
  being longer than the wait they had; the estimate is made per class and service type
  (prospective customers and internet users hang up sooner than account holders), or per
  class when a type has fewer than 30 hang-ups, or over everyone when the class is unknown;
* past the longest recorded hang-up the estimate has no events left: the remaining mass gets
  an exponential tail whose rate is the class's hang-ups per second of waiting.

So every replayed caller behaves as the recorded one did under the recorded waits, and the
model only extrapolates when a policy makes someone wait longer than they did.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Curve:
    times: list[float]
    """Distinct hang-up times, ascending."""
    drops: list[float]
    """Minus the survival just after each time (ascending, for bisect)."""
    tail_rate: float

    @classmethod
    def fit(cls, waits: list[tuple[float, bool]]) -> _Curve:
        waits.sort()
        at_risk = len(waits)
        survival = 1.0
        times: list[float] = []
        drops: list[float] = []
        index = 0
        while index < len(waits):
            moment = waits[index][0]
            ended = leaving = 0
            while index < len(waits) and waits[index][0] == moment:
                ended += waits[index][1]
                leaving += 1
                index += 1
            if ended:
                survival *= 1.0 - ended / at_risk
                times.append(moment)
                drops.append(-survival)
            at_risk -= leaving
        exposure = sum(wait for wait, _ in waits)
        hang_ups = sum(abandoned for _, abandoned in waits)
        return cls(times, drops, hang_ups / exposure if exposure else 0.0)

    def survival(self, wait: float) -> float:
        index = bisect_right(self.times, wait) - 1
        return 1.0 if index < 0 else -self.drops[index]

    def beyond(self, wait: float, rng: random.Random) -> float:
        """A patience drawn from this curve, given it is longer than ``wait``."""
        target = rng.random() * self.survival(wait)
        index = bisect_left(self.drops, -target)
        if index < len(self.times) and self.times[index] > wait:
            return self.times[index]
        last = max(wait, self.times[-1] if self.times else 0.0)
        return last + rng.expovariate(self.tail_rate) if self.tail_rate > 0 else math.inf


MIN_HANG_UPS = 30
"""Fewer hang-ups than this in a (class, service type) stratum: use the whole class's curve."""

_Stratum = tuple[int | None, str | None]


@dataclass(frozen=True, slots=True)
class PatienceModel:
    curves: dict[_Stratum, _Curve]
    """Per (class, service type), per (class, None), and (None, None) for everyone."""

    @classmethod
    def fit(cls, observations: Iterable[tuple[int | None, str, float, bool]]) -> PatienceModel:
        """From (class, service type, wait, hung up?) of callers who reached the queue."""
        strata: defaultdict[_Stratum, list[tuple[float, bool]]] = defaultdict(list)
        for klass, kind, wait, abandoned in observations:
            for key in ((klass, kind), (klass, None), (None, None)):
                strata[key].append((wait, abandoned))
        return cls(
            {
                key: _Curve.fit(waits)
                for key, waits in strata.items()
                if key[1] is None or sum(a for _, a in waits) >= MIN_HANG_UPS
            }
        )

    def sample(
        self, klass: int | None, kind: str, wait: float, *, abandoned: bool, rng: random.Random
    ) -> float:
        """The patience of a caller of ``klass`` who asked for ``kind`` and waited ``wait``."""
        if abandoned:
            return wait
        for key in ((klass, kind), (klass, None), (None, None)):
            curve = self.curves.get(key)
            if curve is not None:
                return curve.beyond(wait, rng)
        return math.inf
