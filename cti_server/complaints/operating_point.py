"""Where a service manager wants the complaint detector to flag calls: the share of calls they
expect to be complaints and what a missed complaint costs against a false alarm.

A model's calibrated probability holds for texts with its training data's complaint share (its
``base_rate``, often near half); a contact center's calls are far less often complaints, so the
probability is moved to the expected rate on the logit scale (Bayes' rule: the odds scale by the
ratio of the prior odds), and a call is flagged when that probability reaches the threshold that
minimises the expected cost: ``false_alarm_cost / (false_alarm_cost + miss_cost)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cti_server.complaints.resources import Calibration


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """``expected_rate``: the share of calls that are complaints (0.05: one in twenty);
    ``miss_cost`` and ``false_alarm_cost``: what missing a complaint and flagging a call that
    was none cost, in any unit (only their ratio counts)."""

    expected_rate: float = 0.05
    miss_cost: float = 5.0
    false_alarm_cost: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.expected_rate < 1.0:
            raise ValueError(
                f"expected_rate must be between 0 and 1 (exclusive), got {self.expected_rate}"
            )
        for name in ("miss_cost", "false_alarm_cost"):
            value = getattr(self, name)
            if not (value > 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value}")

    @classmethod
    def as_trained(cls, threshold: float, calibration: Calibration) -> OperatingPoint:
        """The point that flags what a model's own threshold (chosen by cross-validation in
        training, on its uncalibrated probability) flags, at its training data's complaint
        share: the model as it was trained and evaluated, for comparisons and tests."""
        calibrated = sigmoid(calibration.slope * logit(threshold) + calibration.intercept)
        return cls(calibration.base_rate, (1.0 - calibrated) / calibrated, 1.0)

    @property
    def threshold(self) -> float:
        """The probability from which flagging a call costs less, on average, than not."""
        return self.false_alarm_cost / (self.false_alarm_cost + self.miss_cost)

    def shift(self, base_rate: float) -> float:
        """Logit to add to a probability calibrated at ``base_rate`` to hold at the expected
        rate."""
        return logit(self.expected_rate) - logit(base_rate)


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
