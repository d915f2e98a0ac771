"""Erlang C and Erlang A (Palm's M/M/n+M): how a queue performs with n agents.

Erlang C assumes callers wait for ever; callers hang up, so it over-states the agents needed
wherever waits are long enough for them to do so. Erlang A gives every caller an exponential
patience (mean ``patience_s``, fitted from the centre's own abandons:
:mod:`cti_server.staffing.patience`) and is exact for that model.

The Erlang A measures are those of Mandelbaum and Zeltyn ("The Palm/Erlang-A queue, with
applications to call centers", 2005, section 4; Garnett, Mandelbaum and Reiman, MSOM 2002): with
``λ`` calls per second, ``μ = 1/handle``, ``θ = 1/patience``, ``a = λ/μ`` and the offered wait
``V`` (how long a caller would wait if infinitely patient),

* ``P(V > 0) = λJ / (ε + λJ)``, ``ε = Σ_{j<n} a^j/j! ÷ a^(n-1)/(n-1)! = 1 / B(n-1, a)`` (Erlang B),
* ``J = ∫_0^∞ exp(λ(1 - e^(-θs))/θ - nμs) ds``, the density of ``V`` on ``s > 0`` being
  ``λ exp(...) / (ε + λJ)``; a caller is answered when their patience outlasts ``V``
  (probability ``e^(-θV)``).

The integrals are incomplete gamma functions, but scipy's cannot give their logarithms, and
in a large centre ``e^(λ/θ)`` overflows while the regularized functions underflow: they are
integrated numerically (scipy's QUADPACK) around the exponent's single peak, in logarithms.
Checked against the birth-and-death chain truncated (tests/unit/staffing/test_erlang.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy import integrate, special


class StaffingError(ValueError):
    """Parameters no queue can have (negative rates, a share outside 0..1); says which."""


def erlang_b(servers: int, load: float) -> float:
    """Share of calls blocked with ``servers`` lines and ``load`` erlangs offered (no queue)."""
    return math.exp(-_log_inverse_erlang_b(servers, load))


def _log_inverse_erlang_b(servers: int, load: float) -> float:
    """log 1/B(servers, load), by the recursion 1/B(k) = 1 + k/a * 1/B(k-1), in logarithms."""
    if servers <= 0:
        return 0.0
    if load <= 0:
        return math.inf
    log_inverse = 0.0
    for k in range(1, servers + 1):
        log_inverse = float(np.logaddexp(0.0, math.log(k / load) + log_inverse))
    return log_inverse


@dataclass(frozen=True)
class Queue:
    """A queue in steady state: ``calls_per_s`` arriving, ``handle_s`` each, ``agents`` serving.

    ``patience_s`` None is Erlang C (nobody hangs up); a number is Erlang A.
    """

    calls_per_s: float
    handle_s: float
    agents: int
    patience_s: float | None = None

    def __post_init__(self) -> None:
        if self.calls_per_s < 0 or self.handle_s <= 0 or self.agents < 0:
            raise StaffingError(
                f"calls per second {self.calls_per_s}, handle time {self.handle_s} s and "
                f"agents {self.agents}: expected >= 0, > 0 and >= 0"
            )
        if self.patience_s is not None and not self.patience_s > 0:
            raise StaffingError(f"mean patience {self.patience_s} s: expected > 0 (or none)")

    @property
    def load(self) -> float:
        """Offered load in erlangs (agents' worth of work arriving)."""
        return self.calls_per_s * self.handle_s

    @cached_property
    def _terms(self) -> tuple[float, float]:
        """log ε and log λJ (Erlang A), or their Erlang C limits."""
        n, lam, mu = self.agents, self.calls_per_s, 1.0 / self.handle_s
        log_eps = _log_inverse_erlang_b(n - 1, self.load)
        if self.patience_s is None:
            if n * mu <= lam:
                return log_eps, math.inf
            return log_eps, math.log(lam / (n * mu - lam))
        return log_eps, self._log_lam_integral(lambda _: 1.0, math.inf)

    def _log_lam_integral(self, weight: Callable[[float], float], upper: float) -> float:
        """log of λ ∫_0^upper weight(s) exp(λ(1 - e^(-θs))/θ - nμs) ds (Erlang A).

        The exponent is concave with one peak; it is subtracted before integrating, so that
        neither a large centre (overflow) nor a small one (underflow) loses the digits.
        """
        assert self.patience_s is not None
        lam, theta = self.calls_per_s, 1.0 / self.patience_s
        rate = self.agents / self.handle_s
        y = lam / theta

        def exponent(s: float) -> float:
            return y * -math.expm1(-theta * s) - rate * s

        peak = math.log(lam / rate) / theta if lam > rate else 0.0
        top = exponent(peak)
        pieces = [(0.0, min(peak, upper)), (min(peak, upper), upper)]
        total = 0.0
        for low, high in pieces:
            if high > low:
                value, _ = integrate.quad(
                    lambda s: weight(s) * math.exp(exponent(s) - top), low, high, limit=200
                )
                total += value
        return math.log(lam) + top + math.log(total) if total > 0 else -math.inf

    def _share(self, log_numerator: float) -> float:
        log_eps, log_lam_j = self._terms
        return math.exp(log_numerator - float(np.logaddexp(log_eps, log_lam_j)))

    @property
    def wait_probability(self) -> float:
        """Share of callers who find every agent busy."""
        if self.calls_per_s == 0:
            return 0.0
        if self.agents == 0 or math.isinf(self._terms[1]):
            return 1.0
        return self._share(self._terms[1])

    def service_level(self, within_s: float) -> float:
        """Share of all callers (those who hang up included) answered within ``within_s``."""
        if self.calls_per_s == 0:
            return 1.0
        if self.agents == 0:
            return 0.0
        log_eps, log_lam_j = self._terms
        if math.isinf(log_lam_j):
            return 0.0  # Erlang C past saturation: the queue grows without end
        if self.patience_s is None:
            n, lam, mu = self.agents, self.calls_per_s, 1.0 / self.handle_s
            return 1.0 - self.wait_probability * math.exp(-(n * mu - lam) * within_s)
        theta = 1.0 / self.patience_s
        answered = self._log_lam_integral(lambda s: math.exp(-theta * s), within_s)
        return self._share(float(np.logaddexp(log_eps, answered)))

    @property
    def abandon_rate(self) -> float:
        """Share of callers who hang up before an agent answers."""
        if self.patience_s is None or self.calls_per_s == 0:
            return 0.0
        if self.agents == 0:
            return 1.0
        return max(0.0, 1.0 - self.service_level(math.inf))

    @property
    def asa(self) -> float:
        """Average speed of answer: mean wait of the callers answered (seconds)."""
        if self.calls_per_s == 0:
            return 0.0
        if self.agents == 0:
            return math.inf
        if self.patience_s is None:
            n, lam, mu = self.agents, self.calls_per_s, 1.0 / self.handle_s
            return self.wait_probability / (n * mu - lam) if n * mu > lam else math.inf
        theta = 1.0 / self.patience_s
        waited = self._share(self._log_lam_integral(lambda s: s * math.exp(-theta * s), math.inf))
        answered = self.service_level(math.inf)
        return waited / answered if answered > 0 else math.inf

    @property
    def occupancy(self) -> float:
        """Share of the agents' time spent on calls."""
        if self.agents == 0:
            return 0.0
        answered = 1.0 - self.abandon_rate
        return min(1.0, self.load * answered / self.agents)


def service_levels(
    calls_per_s: NDArray[np.float64],
    handle_s: float,
    agents: int,
    within_s: float,
    patience_s: float | None = None,
) -> NDArray[np.float64]:
    """:meth:`Queue.service_level` for many arrival rates at once (the confidence margin asks
    it of every count an interval may get, for each staffing it tries).

    For Erlang A the integrals are lower incomplete gamma functions (``u = (λ/θ)e^(-θs)``):
    ``λ∫_0^t e^(-kθs) exp(λ(1 - e^(-θs))/θ - nμs) ds = λ e^y y^-b Γ(b)/θ ·
    (P(b, y) - P(b, y e^(-θt)))`` with ``y = λ/θ``, ``b = nμ/θ + k``, whose logarithms scipy
    gives as long as ``P`` does not underflow; where it does (or a rate is 0), the element is
    computed by :class:`Queue` as before."""
    rates = np.asarray(calls_per_s, dtype=float)
    if agents <= 0:
        return np.where(rates > 0, 0.0, 1.0)
    mu = 1.0 / handle_s
    safe = np.where(rates > 0, rates, 1.0)
    log_eps = _log_inverse_erlang_b_many(agents - 1, safe * handle_s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if patience_s is None:
            slack = agents * mu - safe
            log_lam_j = np.log(safe / slack)
            wait = np.exp(log_lam_j - np.logaddexp(log_eps, log_lam_j))
            levels = np.where(slack > 0, 1.0 - wait * np.exp(-slack * within_s), 0.0)
            return np.asarray(np.where(rates > 0, levels, 1.0), dtype=float)
        theta = 1.0 / patience_s
        y = safe / theta
        b = agents * mu / theta
        log_j = _log_gamma_part(safe, y, b, theta, 0.0)
        finite = within_s if math.isfinite(within_s) else 0.0
        log_answered = _log_gamma_part(safe, y, b + 1, theta, finite)
        levels = np.exp(np.logaddexp(log_eps, log_answered) - np.logaddexp(log_eps, log_j))
    bad = (rates > 0) & ~(np.isfinite(levels) & np.isfinite(log_j))
    for index in np.flatnonzero(bad):
        levels[index] = Queue(float(rates[index]), handle_s, agents, patience_s).service_level(
            within_s
        )
    return np.asarray(np.where(rates > 0, levels, 1.0), dtype=float)


def _log_gamma_part(
    lam: NDArray[np.float64], y: NDArray[np.float64], b: float, theta: float, within_s: float
) -> NDArray[np.float64]:
    """log λ e^y y^-b Γ(b)/θ (P(b, y) - P(b, y e^(-θt))); ``within_s`` 0 stands for ∞."""
    upper_p = special.gammainc(b, y)
    if within_s <= 0:
        difference = upper_p
    else:  # P(b, y) - P(b, low) = Q(b, low) - Q(b, y) where P is near 1: no cancellation
        low = y * math.exp(-theta * within_s)
        difference = np.where(
            upper_p < 0.5,
            upper_p - special.gammainc(b, low),
            special.gammaincc(b, low) - special.gammaincc(b, y),
        )
    base = np.log(lam) + y - b * np.log(y) + special.gammaln(b) - math.log(theta)
    return np.asarray(np.where(difference > 0, base + np.log(difference), np.nan), dtype=float)


def _log_inverse_erlang_b_many(servers: int, loads: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`_log_inverse_erlang_b` for many loads at once."""
    log_inverse = np.zeros_like(loads)
    for k in range(1, servers + 1):
        log_inverse = np.logaddexp(0.0, np.log(k / loads) + log_inverse)
    return log_inverse
