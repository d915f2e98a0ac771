"""The customer value model: recency, frequency, monetary scores, lifetime value and a tier.

The model is recomputed for one customer whenever a transaction or interaction arrives, so
every score is read off absolute, configurable bands (a :class:`ValuePolicy`) rather than
population quantiles: a customer's tier never moves because *other* customers bought.

Everything here is a pure function of the purchases, the clock and the policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import pydantic

TIER_ORDER: tuple[str, ...] = ("platinum", "gold", "silver", "standard")
"""Tiers from the most to the least valuable; ``standard`` is the fallback, not configurable."""

_RANKED_TIERS = TIER_ORDER[:-1]
_FALLBACK_TIER = TIER_ORDER[-1]
_DAYS_PER_YEAR = 365.0


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got naive {value!r}")


def _strictly_increasing_positive(values: tuple[float, ...], what: str) -> None:
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"{what} must be finite and positive, got {values}")
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"{what} must be strictly increasing, got {values}")


class ValuePolicy(pydantic.BaseModel, frozen=True, extra="forbid"):
    """The absolute bands and constants of the value model."""

    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    """Days since the last purchase: score 5 if ``<= [0]``, 4 if ``<= [1]``, ... else 1."""
    frequency_counts: tuple[int, int, int, int] = (2, 5, 10, 20)
    """Purchases in the window: score 1 below ``[0]``, 2 from ``[0]``, ... 5 from ``[3]``."""
    monetary_amounts: tuple[float, float, float, float] = (100, 1000, 5000, 20000)
    """Net spend in the window: score 1 below ``[0]``, 2 from ``[0]``, ... 5 from ``[3]``."""
    window_days: int = pydantic.Field(default=365, gt=0)
    expected_lifetime_years: float = pydantic.Field(default=3.0, gt=0, allow_inf_nan=False)
    tiers: dict[str, float] = pydantic.Field(
        default_factory=lambda: {"platinum": 50000.0, "gold": 10000.0, "silver": 2000.0}
    )
    """Minimum estimated lifetime value per tier; anything below every minimum is standard."""

    @pydantic.field_validator("recency_days", "frequency_counts", "monetary_amounts")
    @classmethod
    def _check_bands(
        cls, value: tuple[float, ...], info: pydantic.ValidationInfo
    ) -> tuple[float, ...]:
        _strictly_increasing_positive(value, str(info.field_name))
        return value

    @pydantic.field_validator("tiers")
    @classmethod
    def _check_tiers(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(_RANKED_TIERS))
        if unknown:
            raise ValueError(
                f"unknown tier(s) {unknown}: tiers are {list(_RANKED_TIERS)} "
                f"({_FALLBACK_TIER!r} is what is left below them)"
            )
        if any(not math.isfinite(v) or v < 0 for v in value.values()):
            raise ValueError(f"tier minima must be finite and non-negative, got {value}")
        minima = [value[t] for t in _RANKED_TIERS if t in value]
        if any(b >= a for a, b in pairwise(minima)):
            raise ValueError(f"tier minima must decrease from platinum to silver, got {value}")
        return value


@dataclass(frozen=True)
class Purchase:
    """One transaction; a refund is a negative amount."""

    at: datetime
    amount: float

    def __post_init__(self) -> None:
        _require_aware(self.at, "Purchase.at")
        if not math.isfinite(self.amount):
            raise ValueError(f"Purchase.amount must be finite, got {self.amount}")


@dataclass(frozen=True)
class ValueScore:
    """RFM scores (1..5), the lifetime-value estimate, the tier and why."""

    recency: int
    frequency: int
    monetary: int
    lifetime_value: float
    tier: str
    reason: str


def _score_at_least(value: float, bands: Sequence[float]) -> int:
    """1 plus the number of band minima ``value`` reaches (1..5 for four bands)."""
    return 1 + sum(1 for band in bands if value >= band)


def _score_at_most(value: float, bands: Sequence[float]) -> int:
    """5 for ``value <= bands[0]``, 4 for ``<= bands[1]``, ... 1 past every band."""
    for index, band in enumerate(bands):
        if value <= band:
            return len(bands) + 1 - index
    return 1


def _money(value: float) -> str:
    return f"{value:,.0f}" if value == round(value) else f"{value:,.2f}"


def _tier_for(lifetime_value: float, policy: ValuePolicy) -> str:
    for tier in _RANKED_TIERS:
        if tier in policy.tiers and lifetime_value >= policy.tiers[tier]:
            return tier
    return _FALLBACK_TIER


def _tier_reason(lifetime_value: float, tier: str, policy: ValuePolicy) -> str:
    ltv = _money(lifetime_value)
    if tier != _FALLBACK_TIER:
        return f"{tier}: estimated lifetime value {ltv} ≥ {_money(policy.tiers[tier])}"
    lowest = [t for t in _RANKED_TIERS if t in policy.tiers]
    if not lowest:
        return f"{tier}: estimated lifetime value {ltv}, no tiers are configured"
    floor = lowest[-1]
    return (
        f"{tier}: estimated lifetime value {ltv} < {_money(policy.tiers[floor])} needed for {floor}"
    )


def score_customer(
    purchases: Sequence[Purchase],
    now: datetime,
    policy: ValuePolicy,
    override: str | None = None,
) -> ValueScore:
    """Score one customer as of ``now``.

    A *purchase* is a transaction with a positive amount; refunds (negative amounts) lower
    the spend but are not purchases. Transactions dated after ``now`` (clock skew between
    systems) count as made at ``now``. The *window* is the ``window_days`` up to ``now``.

    * recency: whole days since the last purchase, banded by ``recency_days`` (5 = recent).
    * frequency: purchases in the window, banded by ``frequency_counts``.
    * monetary: net spend in the window (refunds included, never below 0), banded by
      ``monetary_amounts``.
    * lifetime value::

        active   = max(0, net spend from window_days before the last purchase up to now)
        annual   = active * 365 / window_days
        silence  = whole days since the last purchase
        decay    = 0.5 ** (max(0, silence - window_days) / window_days)
        LTV      = round(annual * expected_lifetime_years * decay, 2)

      The spend is that of the customer's last active window, so a customer who stops
      buying keeps their value for one window and then loses half of it for every further
      window of silence (with the defaults: worth 1/2 after two silent years, 1/4 after
      three, 1/8 after four).
    * tier: the first tier of :data:`TIER_ORDER` whose minimum the LTV reaches, else
      ``standard``; ``override`` (a manual tier for strategic accounts) wins over it.

    A customer without purchases scores 1, 1, 1 with an LTV of 0 and is ``standard``.
    Raises :class:`ValueError` for a naive ``now`` or an unknown ``override``.
    """
    _require_aware(now, "now")
    if override is not None and override not in TIER_ORDER:
        raise ValueError(f"unknown override tier {override!r}: tiers are {list(TIER_ORDER)}")

    def when(purchase: Purchase) -> datetime:
        return min(purchase.at, now)

    bought = [p for p in purchases if p.amount > 0]
    if not bought:
        recency = frequency = monetary = 1
        lifetime_value = 0.0
        tier = _FALLBACK_TIER
        reason = f"{tier}: no purchases yet"
    else:
        window = timedelta(days=policy.window_days)
        last = max(when(p) for p in bought)
        silence_days = (now - last).days
        window_start = now - window
        in_window = [p for p in purchases if when(p) >= window_start]
        recency = _score_at_most(silence_days, policy.recency_days)
        frequency = _score_at_least(
            sum(1 for p in in_window if p.amount > 0), policy.frequency_counts
        )
        monetary = _score_at_least(
            max(0.0, sum(p.amount for p in in_window)), policy.monetary_amounts
        )

        active_spend = max(0.0, sum(p.amount for p in purchases if when(p) >= last - window))
        annual = active_spend * _DAYS_PER_YEAR / policy.window_days
        decay = 0.5 ** (max(0, silence_days - policy.window_days) / policy.window_days)
        lifetime_value = round(annual * policy.expected_lifetime_years * decay, 2)
        tier = _tier_for(lifetime_value, policy)
        reason = _tier_reason(lifetime_value, tier, policy)
        if decay < 1:
            reason += f", reduced after {silence_days:,} days without a purchase"

    if override is not None:
        computed = reason.partition(": ")[2]
        reason = (
            f"{override}: manual override for a strategic account "
            f"(the model alone gives {tier}: {computed})"
        )
        tier = override
    return ValueScore(
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        lifetime_value=lifetime_value,
        tier=tier,
        reason=reason,
    )
