"""Callers' mean patience for Erlang A, fitted from the centre's own waits.

A caller who hung up after waiting ``w`` had a patience of ``w``; a caller who was answered
after ``w`` had a patience longer than ``w``, by an unknown amount (a censored observation).
Taking only the hang-ups (their mean wait) under-states patience, since the patient ones were
answered first; dividing the abandon rate by nothing at all over-states it. For an exponential
patience with rate ``θ`` the likelihood is ``Π θ e^(-θ w)`` over hang-ups times ``Π e^(-θ w)``
over the answered, maximised at

    θ = hang-ups / total waiting time of everyone who waited,

so the mean patience is the total wait over the hang-ups. The Kaplan-Meier estimate of the
routing simulator (:mod:`cti_server.routing.patience`) makes no such assumption;
:func:`compare_with_kaplan_meier` puts the two side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from cti_server.routing.patience import PatienceModel
from cti_server.staffing.erlang import StaffingError


@dataclass(frozen=True, slots=True)
class Patience:
    mean_s: float
    """Total waiting time over hang-ups; inf when nobody hung up."""
    hang_ups: int
    waited: int
    """Callers with a wait (answered or not), the observations."""
    total_wait_s: float

    @property
    def rate(self) -> float:
        return 1.0 / self.mean_s if self.mean_s > 0 else math.inf

    def survival(self, seconds: float) -> float:
        """Share of callers still willing to wait after ``seconds``."""
        return math.exp(-seconds / self.mean_s) if math.isfinite(self.mean_s) else 1.0


def fit_exponential(waits: Iterable[tuple[float, bool]]) -> Patience:
    """From (seconds waited, hung up?) of every caller who reached the queue."""
    hang_ups = waited = 0
    total = 0.0
    for seconds, abandoned in waits:
        if seconds < 0:
            raise StaffingError(f"a wait of {seconds} s: waits are never negative")
        total += seconds
        waited += 1
        hang_ups += abandoned
    if waited == 0:
        raise StaffingError("no caller reached the queue: patience cannot be fitted")
    mean = total / hang_ups if hang_ups else math.inf
    return Patience(mean_s=mean, hang_ups=hang_ups, waited=waited, total_wait_s=total)


@dataclass(frozen=True, slots=True)
class Comparison:
    seconds: tuple[float, ...]
    kaplan_meier: tuple[float, ...]
    """Survival of patience at each of ``seconds``, Kaplan-Meier."""
    exponential: tuple[float, ...]
    km_median_s: float
    """First time the Kaplan-Meier survival falls to one half (inf if it never does)."""
    exponential_median_s: float
    naive_mean_s: float
    """Mean wait of those who hung up: what ignoring censoring would report."""


def compare_with_kaplan_meier(
    waits: Iterable[tuple[float, bool]], seconds: Iterable[float] = (30, 60, 120, 300, 600)
) -> Comparison:
    """The exponential fit beside the Kaplan-Meier curve of the same waits."""
    observed = list(waits)
    fitted = fit_exponential(observed)
    curve = PatienceModel.fit((None, "", w, a) for w, a in observed).curves[(None, None)]
    at = tuple(seconds)
    median = next(
        (t for t in curve.times if curve.survival(t) <= 0.5),
        math.inf,
    )
    abandoned = [w for w, a in observed if a]
    return Comparison(
        seconds=at,
        kaplan_meier=tuple(curve.survival(t) for t in at),
        exponential=tuple(fitted.survival(t) for t in at),
        km_median_s=median,
        exponential_median_s=fitted.mean_s * math.log(2),
        naive_mean_s=sum(abandoned) / len(abandoned) if abandoned else math.nan,
    )
