"""Dense text features: cue matches by group, sentiment, and whether the text addressed us.

Shared by training and detection. VADER (English sentiment) is built on first use: its lexicon
takes a moment to read and most imports of this module never score English text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cti_server.complaints.resources import Lexicon
from cti_server.complaints.text import Normalized, Prepared, normalize

SENTIMENT = {"en": ("vader_neg", "vader_pos", "vader_compound"), "zh": ()}


@dataclass(frozen=True, slots=True)
class CueMatch:
    group: str
    start: int  # in the normalized text
    end: int
    text: str


class TextFeatures:
    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._vader: Any = None

    def names(self, language: str) -> tuple[str, ...]:
        cues = tuple(f"cue_{group}" for group in self.lexicon.group_names)
        return (*cues, *SENTIMENT[language], "addressed")

    def cue_matches(self, normalized: Normalized, language: str) -> list[CueMatch]:
        found = []
        for cue in self.lexicon.cues[language]:
            for m in cue.pattern.finditer(normalized.text):
                if m.end() > m.start():
                    found.append(CueMatch(cue.group, m.start(), m.end(), m.group(0)))
        found.sort(key=lambda c: (c.start, c.end))
        return found

    def dense(self, prepared: Prepared, language: str) -> tuple[dict[str, float], list[CueMatch]]:
        """The features of a prepared text, and the cue matches they counted."""
        normalized = normalize(prepared.text)
        matches = self.cue_matches(normalized, language)
        counts = dict.fromkeys(self.lexicon.group_names, 0)
        for match in matches:
            counts[match.group] += 1
        values = {f"cue_{group}": math.log1p(n) for group, n in counts.items()}
        if language == "en":
            scores = self._sentiment_en(self._literal(prepared.text, normalized, matches))
            values.update(
                vader_neg=scores["neg"], vader_pos=scores["pos"], vader_compound=scores["compound"]
            )
        values["addressed"] = 1.0 if prepared.addressed else 0.0
        return values, matches

    def _literal(self, text: str, normalized: Normalized, matches: list[CueMatch]) -> str:
        """The text without the cues whose words mean the opposite of what they say ("great,
        just great", "I'd expected better"), so that sentiment does not read them literally."""
        spans = [
            normalized.original_span(m.start, m.end)
            for m in matches
            if self.lexicon.groups[m.group].unsentimental
        ]
        for start, end in sorted(spans, reverse=True):
            text = text[:start] + " " + text[end:]
        return text

    def prior(self, matches: list[CueMatch], cap: float) -> float:
        """Logit from the groups' priors, once per group, capped (see cues.yaml)."""
        groups = {m.group for m in matches}
        total = sum(self.lexicon.groups[g].prior for g in groups)
        return min(total, cap)

    def _sentiment_en(self, text: str) -> dict[str, float]:
        if self._vader is None:
            from vaderSentiment.vaderSentiment import (  # noqa: PLC0415 - reads its lexicon
                SentimentIntensityAnalyzer,
            )

            self._vader = SentimentIntensityAnalyzer()
        scores: dict[str, float] = self._vader.polarity_scores(text)
        return scores
