"""Dense text features: cue matches by group, sentiment, and whether the text addressed us.

Shared by training and detection. A text is analysed in parts of bounded length (a transcript's
utterances, a long one cut up; see :func:`.text.parts`), each once: its cue matches and its
English sentiment. The features of a text made of parts (a window of a call) are put together
from the parts' (:meth:`TextFeatures.combine`), so a part read in three windows is analysed once
and no step grows faster than the text.

Sentiment is VADER's, per part: the valence of each word after VADER's rules, which look a few
words back (negation, boosters) and, for "but", over the whole part; the window's scores are
VADER's own sums over its parts' valences. A text of one part gets exactly VADER's scores. VADER
is built on first use: its lexicon takes a moment to read and most imports of this module never
score English text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cti_server.complaints.resources import Lexicon
from cti_server.complaints.text import Normalized, Prepared, normalize, parts

SENTIMENT = {"en": ("vader_neg", "vader_pos", "vader_compound"), "zh": ()}


@dataclass(frozen=True, slots=True)
class CueMatch:
    group: str
    start: int  # in the normalized text
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Sentiment:
    """VADER's reading of one part: each word's valence, and the part's "!" and "?" (all VADER
    reads of its characters once the words are valued)."""

    valences: tuple[float, ...]
    exclamations: int
    questions: int


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a text analysed: its normalized text, its cue matches (offsets in the
    normalized text) and, in English, its sentiment."""

    normalized: Normalized
    matches: tuple[CueMatch, ...]
    sentiment: Sentiment | None


class TextFeatures:
    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._vader: Any = None
        self.parts_analysed = 0  # parts of text analysed (a whole text: its sentiment's parts)

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

    def part(self, text: str, language: str) -> Part:
        """One part analysed: a transcript's utterance (or a piece of a long one)."""
        self.parts_analysed += 1
        normalized = normalize(text)
        matches = tuple(self.cue_matches(normalized, language))
        sentiment = (
            self._sentiment_en(self._literal(text, normalized, matches))
            if language == "en"
            else None
        )
        return Part(normalized, matches, sentiment)

    def combine(self, parts: Sequence[Part], language: str, addressed: bool) -> dict[str, float]:
        """The features of a text made of ``parts``, from what each part found."""
        counts = dict.fromkeys(self.lexicon.group_names, 0)
        for part in parts:
            for match in part.matches:
                counts[match.group] += 1
        values = {f"cue_{group}": math.log1p(n) for group, n in counts.items()}
        if language == "en":
            sentiments = [p.sentiment for p in parts if p.sentiment is not None]
            scores = self._scores(sentiments)
            values.update(
                vader_neg=scores["neg"], vader_pos=scores["pos"], vader_compound=scores["compound"]
            )
        values["addressed"] = 1.0 if addressed else 0.0
        return values

    def dense(self, prepared: Prepared, language: str) -> tuple[dict[str, float], list[CueMatch]]:
        """The features of a prepared text, and the cue matches they counted. Cues are matched
        over the whole text; sentiment is read in parts of bounded length (one, for a text no
        longer than a part)."""
        normalized = normalize(prepared.text)
        matches = self.cue_matches(normalized, language)
        sentiment = None
        if language == "en":
            literal = self._literal(prepared.text, normalized, matches)
            pieces = parts(literal)
            sentiment = self._joined([self._sentiment_en(piece) for _, piece in pieces])
            self.parts_analysed += len(pieces)
        else:
            self.parts_analysed += 1
        whole = Part(normalized, tuple(matches), sentiment)
        return self.combine([whole], language, prepared.addressed), matches

    def _literal(self, text: str, normalized: Normalized, matches: Sequence[CueMatch]) -> str:
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

    def prior(self, matches: Sequence[CueMatch], cap: float) -> float:
        """Logit from the groups' priors, once per group, capped (see cues.yaml)."""
        return self.prior_of({m.group for m in matches}, cap)

    def prior_of(self, groups: set[str], cap: float) -> float:
        """Logit from the priors of the cue groups found, capped (see cues.yaml)."""
        return min(sum(self.lexicon.groups[g].prior for g in groups), cap)

    def _analyser(self) -> Any:
        if self._vader is None:
            self._vader = _valence_analyser()
        return self._vader

    def _sentiment_en(self, text: str) -> Sentiment:
        """VADER's word valences of ``text``, before its sums (:meth:`_scores` makes them)."""
        valences, text = self._analyser().polarity_scores(text)
        return Sentiment(tuple(valences), text.count("!"), text.count("?"))

    @staticmethod
    def _joined(sentiments: Sequence[Sentiment]) -> Sentiment:
        return Sentiment(
            tuple(v for s in sentiments for v in s.valences),
            sum(s.exclamations for s in sentiments),
            sum(s.questions for s in sentiments),
        )

    def _scores(self, sentiments: Sequence[Sentiment]) -> dict[str, float]:
        """VADER's neg, pos and compound over the parts' valences and punctuation."""
        joined = self._joined(sentiments)
        # VADER counts at most 4 "!", and any "?" beyond 3 as 3 and a bit: capped counts say all
        punctuation = "!" * min(joined.exclamations, 4) + "?" * min(joined.questions, 4)
        scores: dict[str, float] = self._analyser().sums(list(joined.valences), punctuation)
        return scores


def _valence_analyser() -> Any:
    """VADER's analyser whose ``polarity_scores`` stops before the sums: it gives the words'
    valences (after VADER's rules) and the text, and ``sums`` makes VADER's scores of them."""
    from vaderSentiment.vaderSentiment import (  # noqa: PLC0415 - reads its lexicon
        SentimentIntensityAnalyzer,
    )

    class ValenceAnalyser(SentimentIntensityAnalyzer):  # type: ignore[misc]
        def score_valence(self, sentiments: list[float], text: str) -> tuple[list[float], str]:
            return sentiments, text

        def sums(self, sentiments: list[float], text: str) -> dict[str, float]:
            scores: dict[str, float] = super().score_valence(sentiments, text)
            return scores

    return ValenceAnalyser()
