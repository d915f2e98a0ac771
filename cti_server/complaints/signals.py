"""What the detector reads (transcript lines, call facts) and what it says (a signal with evidence).

Small frozen dataclasses with no behaviour, so that speech, the CRM writer and the review page can
share them without importing the detector or its data files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Category = Literal["billing", "delivery", "product", "service", "staff", "other"]
Severity = Literal["low", "medium", "high", "critical"]

CATEGORIES: tuple[Category, ...] = ("billing", "delivery", "product", "service", "staff", "other")
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its times (seconds from the start of the call)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of a transcript (one speaker's utterance) as the detector reads it; only
    ``speaker == "customer"`` lines are scored.

    ``words`` are optional: with them evidence times are those of the words that fired, without
    them times are interpolated along the line by character position.
    """

    text: str
    start: float
    end: float
    speaker: str = "customer"
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the call and the CRM know besides the words; each raises the probability.

    ``repeat_call_same_topic_7d`` is set by the caller of the detector from the CRM history;
    ``hold_seconds`` is the agent's hold once answered, ``queue_wait_seconds`` the wait before;
    ``transfers_back_and_forth`` counts transfers that returned the call to a party it had left.
    """

    repeat_call_same_topic_7d: bool = False
    hold_seconds: float = 0.0
    queue_wait_seconds: float = 0.0
    transfers_back_and_forth: int = 0
    survey_score: int | None = None  # 1 (worst) .. 5, None when the caller did not rate
    abandoned_after_wait_seconds: float | None = None  # set only when the caller hung up waiting


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why the detector thinks so: a span of one segment, or a call fact (``segment`` is None).

    ``char_start``/``char_end`` index the segment's own text; ``start``/``end`` are seconds.
    """

    kind: Literal["cue", "model", "fact"]
    cue: str  # the cue, model term or fact that fired, e.g. "give_up: 算了" or "survey_score=1"
    weight: float  # its contribution to the logit
    segment: int | None = None
    char_start: int = 0
    char_end: int = 0
    start: float | None = None
    end: float | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class ComplaintSignal:
    """The detector's finding on one call (or one part of a call, when run live)."""

    probability: float
    threshold: float
    category: Category
    severity: Severity
    language: str
    evidence: tuple[Evidence, ...] = field(default=())

    @property
    def is_complaint(self) -> bool:
        return self.probability >= self.threshold
