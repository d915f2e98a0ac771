"""Figures of a complaint model's probabilities that a manager can act on (bench and tests).

- how well calibrated they are: a reliability table (predicted bin against observed rate), the
  Brier score and the expected calibration error;
- what a flag is worth where complaints are rare: probabilities calibrated at the training base
  rate are moved to the expected rate (a prior shift in logits), a text is flagged when that
  probability reaches ``1 / (1 + miss_cost)`` (a miss costs ``miss_cost`` false alarms), and the
  precision is the one the test set would have at that rate:
  ``rate * TPR / (rate * TPR + (1 - rate) * FPR)``;
- which complaints are *indirect*: :func:`overt_negative` is the frozen rule that tells them from
  those that say it outright (see the README beside the data).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def shifted(probabilities: FloatArray, base_rate: float, rate: float) -> FloatArray:
    """Probabilities calibrated where complaints are ``base_rate`` of texts, at ``rate`` instead."""
    clipped = np.clip(probabilities, 1e-12, 1 - 1e-12)
    logits = np.log(clipped / (1 - clipped)) + logit(rate) - logit(base_rate)
    result: FloatArray = 1.0 / (1.0 + np.exp(-logits))
    return result


def flag_threshold(miss_cost: float, false_alarm_cost: float = 1.0) -> float:
    """The probability from which flagging costs less than not flagging."""
    return false_alarm_cost / (false_alarm_cost + miss_cost)


@dataclass(frozen=True, slots=True)
class AtRate:
    rate: float
    threshold: float  # on the calibrated probability at the training base rate
    tpr: float
    fpr: float
    precision: float  # at ``rate``


def at_rate(
    probabilities: FloatArray,
    labels: IntArray,
    base_rate: float,
    rate: float,
    miss_cost: float,
) -> AtRate:
    """The operating point for an expected complaint ``rate`` and cost of a miss, and the
    precision the test set would have if complaints were ``rate`` of it."""
    flagged = shifted(probabilities, base_rate, rate) >= flag_threshold(miss_cost)
    positives, negatives = labels == 1, labels == 0
    tpr = float(np.mean(flagged[positives])) if positives.any() else 0.0
    fpr = float(np.mean(flagged[negatives])) if negatives.any() else 0.0
    hits, alarms = rate * tpr, (1 - rate) * fpr
    precision = hits / (hits + alarms) if hits + alarms else 0.0
    # the same point on the unshifted scale, for people
    cut = logit(flag_threshold(miss_cost)) - logit(rate) + logit(base_rate)
    return AtRate(rate, 1 / (1 + math.exp(-cut)), tpr, fpr, precision)


@dataclass(frozen=True, slots=True)
class Bin:
    low: float
    high: float
    count: int
    predicted: float  # mean probability in the bin
    observed: float  # share of complaints in the bin


def reliability(probabilities: FloatArray, labels: IntArray, bins: int = 10) -> list[Bin]:
    """Equal-width bins of predicted probability with their observed complaint rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        members = which == b
        if members.any():
            table.append(
                Bin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(members.sum()),
                    float(probabilities[members].mean()),
                    float(labels[members].mean()),
                )
            )
    return table


def expected_calibration_error(
    probabilities: FloatArray, labels: IntArray, bins: int = 10
) -> float:
    """Mean |predicted - observed| over the bins, weighted by their size."""
    total = len(probabilities)
    return (
        sum(
            b.count * abs(b.predicted - b.observed)
            for b in reliability(probabilities, labels, bins)
        )
        / total
    )


def brier(probabilities: FloatArray, labels: IntArray) -> float:
    return float(np.mean((probabilities - labels) ** 2))


def best_f1(scores: FloatArray, labels: IntArray) -> float:
    """The highest F1 that any threshold on ``scores`` gives (texts of equal score flagged
    together): a bound, never a figure to claim, since the threshold is chosen on the test set.
    What a model's F1 lacks of it is the chosen threshold's fault; the rest is the ranking's."""
    positives = int(np.sum(labels == 1))
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order] == 1)
    ends = np.flatnonzero(np.r_[np.diff(scores[order]) != 0, True])  # last of each equal score
    flagged = ends + 1
    return float(np.max(2 * hits[ends] / (flagged + positives)))


# -- indirect dissatisfaction ---------------------------------------------------------------------

# Overt negative wording in Chinese reviews and messages: a small fixed list of words that say it
# outright. A complaint with none of them (nor an English word VADER scores negative) is indirect.
# Frozen: the evaluation subset depends on this list and on nothing that is tuned (not cues.yaml).
OVERT_NEGATIVE_ZH = (
    "差",
    "不好",
    "不行",
    "不能",
    "不值",
    "不满",
    "不喜欢",
    "不推荐",
    "不新鲜",
    "不舒服",
    "不会再",
    "垃圾",
    "失望",
    "慢",
    "难吃",
    "难喝",
    "难用",
    "难看",
    "退货",
    "退款",
    "退钱",
    "投诉",
    "坏",
    "烂",
    "糟",
    "恶心",
    "骗",
    "假货",
    "坑",
    "破",
    "脏",
    "臭",
    "后悔",
    "生气",
    "无语",
    "郁闷",
    "上当",
    "问题",
    "贵",
)

_ZH = re.compile("|".join(map(re.escape, OVERT_NEGATIVE_ZH)))
_WORDS = re.compile(r"[a-z']+")


@cache
def _vader_negative() -> frozenset[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: PLC0415

    lexicon: dict[str, float] = SentimentIntensityAnalyzer().lexicon
    return frozenset(word for word, valence in lexicon.items() if valence < 0)


def overt_negative(text: str, language: str) -> bool:
    """Whether ``text`` says it outright: a word of :data:`OVERT_NEGATIVE_ZH` (Chinese) or of
    VADER's lexicon with a negative valence (English, lower case)."""
    if language == "zh":
        return _ZH.search(text) is not None
    negative = _vader_negative()
    return any(word in negative for word in _WORDS.findall(text.lower()))


def indirect(texts: Sequence[str], labels: IntArray, language: str) -> NDArray[np.bool_]:
    """The complaints (label 1) with no overt negative wording: the indirect subset."""
    return np.array(
        [
            label == 1 and not overt_negative(text, language)
            for text, label in zip(texts, labels, strict=True)
        ],
        dtype=bool,
    )
