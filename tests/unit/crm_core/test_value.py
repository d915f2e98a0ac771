"""The customer value model: RFM scores, lifetime value and tier for one customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from crm_core.value import TIER_ORDER, Purchase, ValuePolicy, ValueScore, score_customer

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
POLICY = ValuePolicy()


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _score(purchases: list[Purchase], now: datetime = NOW, **kwargs: Any) -> ValueScore:
    return score_customer(purchases, now, POLICY, **kwargs)


def test_tier_order() -> None:
    assert TIER_ORDER == ("platinum", "gold", "silver", "standard")


def test_no_purchases_is_standard() -> None:
    score = _score([])
    assert (score.recency, score.frequency, score.monetary) == (1, 1, 1)
    assert score.lifetime_value == 0
    assert score.tier == "standard"
    assert score.reason == "standard: no purchases yet"


def test_only_refunds_count_as_no_purchases() -> None:
    score = _score([Purchase(_ago(3), -50)])
    assert (score.recency, score.frequency, score.monetary, score.tier) == (1, 1, 1, "standard")
    assert score.lifetime_value == 0


def test_tier_rises_as_purchases_arrive() -> None:
    # With the defaults: LTV = spend in the last 365 days * 3 (years).
    arrivals = [
        (Purchase(_ago(200), 300), 900.0, "standard"),
        (Purchase(_ago(150), 500), 2400.0, "silver"),
        (Purchase(_ago(60), 2700), 10500.0, "gold"),
        (Purchase(_ago(20), 9000), 37500.0, "gold"),
        (Purchase(_ago(1), 4200), 50100.0, "platinum"),
    ]
    history: list[Purchase] = []
    tiers = []
    for purchase, ltv, tier in arrivals:
        history.append(purchase)
        score = _score(history)
        assert score.lifetime_value == pytest.approx(ltv)
        assert score.tier == tier, score.reason
        tiers.append(score.tier)
    assert tiers == ["standard", "silver", "gold", "gold", "platinum"]
    assert score.reason == "platinum: estimated lifetime value 50,100 ≥ 50,000"


def test_reasons_name_the_threshold() -> None:
    assert _score([Purchase(_ago(10), 4200)]).reason == (
        "gold: estimated lifetime value 12,600 ≥ 10,000"
    )
    assert _score([Purchase(_ago(10), 150.5)]).reason == (
        "standard: estimated lifetime value 451.50 < 2,000 needed for silver"
    )


def test_refund_lowers_the_value() -> None:
    bought = [Purchase(_ago(30), 4000)]
    assert _score(bought).tier == "gold"
    refunded = _score([*bought, Purchase(_ago(5), -3000)])
    assert refunded.lifetime_value == pytest.approx(3000)
    assert refunded.tier == "silver"
    assert refunded.recency == 5  # the refund is not a purchase, the last one was 30 days ago
    assert refunded.frequency == 1


def test_tier_falls_when_silent_for_years() -> None:
    history = [Purchase(_ago(d), 1000) for d in (10, 40, 100, 200, 300)]  # 5,000 a year
    active = _score(history)
    assert active.tier == "gold"
    assert active.lifetime_value == pytest.approx(15000)

    # Within one window of silence the value holds; then it halves every further window.
    a_year_later = _score(history, NOW + timedelta(days=300))
    assert a_year_later.lifetime_value == pytest.approx(15000)
    assert a_year_later.tier == "gold"
    assert a_year_later.recency == 2  # 310 days since the last purchase
    tiers = [_score(history, NOW + timedelta(days=365 * years)).tier for years in (2, 3, 4)]
    assert tiers == ["silver", "silver", "standard"]
    two_years = _score(history, NOW + timedelta(days=365 * 2))
    assert two_years.lifetime_value < active.lifetime_value / 2
    assert "reduced after 740 days without a purchase" in two_years.reason


def test_rfm_bands() -> None:
    score = _score([Purchase(_ago(d), 60) for d in range(5, 5 * 12, 5)])  # 11 purchases
    assert score.recency == 5  # 5 days
    assert score.frequency == 4  # 11 >= 10
    assert score.monetary == 2  # 660 >= 100
    assert _score([Purchase(_ago(91), 1000)]).recency == 3
    assert _score([Purchase(_ago(365), 1000)]).recency == 2
    assert _score([Purchase(_ago(366), 1000)]).recency == 1
    assert _score([Purchase(_ago(400), 30000)]).monetary == 1  # outside the window
    assert _score([Purchase(_ago(10), 20000)]).monetary == 5


def test_future_transactions_count_as_now() -> None:
    score = _score([Purchase(NOW + timedelta(minutes=5), 700)])
    assert score.recency == 5
    assert score.lifetime_value == pytest.approx(2100)


def test_override_wins_and_says_so() -> None:
    score = _score([Purchase(_ago(10), 100)], override="platinum")
    assert score.tier == "platinum"
    assert score.lifetime_value == pytest.approx(300)
    assert score.reason.startswith("platinum: manual override")
    assert "standard" in score.reason
    assert _score([], override="gold").tier == "gold"


def test_unknown_override_rejected() -> None:
    with pytest.raises(ValueError, match="override"):
        _score([], override="diamond")


def test_naive_datetimes_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score_customer([], datetime(2024, 6, 1), POLICY)
    with pytest.raises(ValueError, match="timezone-aware"):
        Purchase(datetime(2024, 6, 1), 10)


def test_other_timezones_are_fine() -> None:
    shanghai = timezone(timedelta(hours=8))
    purchase = Purchase(datetime(2024, 6, 1, 19, 0, tzinfo=shanghai), 1000)  # 11:00 UTC
    assert _score([purchase]).recency == 5


def test_custom_policy() -> None:
    policy = ValuePolicy(window_days=90, expected_lifetime_years=1, tiers={"gold": 1000})
    score = score_customer([Purchase(_ago(10), 300)], NOW, policy)
    assert score.lifetime_value == round(300 * 365 / 90, 2)
    assert score.tier == "gold"
    assert score_customer([Purchase(_ago(10), 100)], NOW, policy).reason == (
        "standard: estimated lifetime value 405.56 < 1,000 needed for gold"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"recency_days": (30, 30, 180, 365)},
        {"recency_days": (90, 30, 180, 365)},
        {"recency_days": (0, 30, 180, 365)},
        {"frequency_counts": (2, 5, 10)},
        {"monetary_amounts": (-1, 1000, 5000, 20000)},
        {"monetary_amounts": (100, 1000, float("inf"), 20000)},
        {"window_days": 0},
        {"expected_lifetime_years": -1},
        {"tiers": {"gold": -5}},
        {"tiers": {"diamond": 5}},
        {"tiers": {"standard": 0}},
        {"tiers": {"platinum": 100, "gold": 1000}},
        {"unknown_field": 1},
    ],
)
def test_policy_validation(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ValuePolicy(**fields)


def test_policy_is_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        POLICY.window_days = 30  # type: ignore[misc]
