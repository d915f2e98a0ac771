"""Censored patience: the exponential MLE recovers a known mean where the naive mean of
hang-ups does not, and sits beside the Kaplan-Meier curve of the same waits."""

from __future__ import annotations

import math
import random

import pytest

from cti_server.staffing.erlang import StaffingError
from cti_server.staffing.patience import compare_with_kaplan_meier, fit_exponential

MEAN_PATIENCE = 200.0


def _waits(callers: int = 20_000, seed: int = 7) -> list[tuple[float, bool]]:
    """Each caller would wait ``offered`` for an agent and hangs up after ``patience``."""
    rng = random.Random(seed)
    waits = []
    for _ in range(callers):
        offered = rng.expovariate(1 / 150) if rng.random() < 0.7 else 0.0
        patience = rng.expovariate(1 / MEAN_PATIENCE)
        waits.append((min(offered, patience), patience < offered))
    return waits


def test_the_mle_recovers_the_mean_patience_the_hang_ups_alone_understate() -> None:
    waits = _waits()
    fitted = fit_exponential(waits)

    assert fitted.mean_s == pytest.approx(MEAN_PATIENCE, rel=0.05)
    assert fitted.hang_ups == sum(a for _, a in waits)
    naive = sum(w for w, a in waits if a) / fitted.hang_ups
    assert naive < 0.5 * MEAN_PATIENCE  # those who hung up were the impatient ones


def test_kaplan_meier_agrees_with_the_exponential_when_patience_is_exponential() -> None:
    comparison = compare_with_kaplan_meier(_waits(), (60, 120, 300))

    for km, exponential in zip(comparison.kaplan_meier, comparison.exponential, strict=True):
        assert km == pytest.approx(exponential, abs=0.03)
    assert comparison.exponential_median_s == pytest.approx(MEAN_PATIENCE * math.log(2), rel=0.05)
    assert comparison.km_median_s == pytest.approx(MEAN_PATIENCE * math.log(2), rel=0.1)


def test_nobody_hung_up_means_unbounded_patience_and_no_caller_is_an_error() -> None:
    assert fit_exponential([(30.0, False), (0.0, False)]).mean_s == math.inf
    with pytest.raises(StaffingError, match="no caller"):
        fit_exponential([])
    with pytest.raises(StaffingError, match="negative"):
        fit_exponential([(-1.0, True)])
