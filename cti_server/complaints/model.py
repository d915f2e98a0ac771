"""The trained linear text model, scored without scikit-learn from its data file.

logit = intercept + Σ tf-idf(n-gram) x coefficient + Σ dense feature x coefficient, where the
tf-idf is computed exactly as the vectorizers did in training (see :mod:`.text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cti_server.complaints.resources import ModelData
from cti_server.complaints.text import analyse, tfidf

_PUNCTUATION = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def model_text(text: str, strip_punctuation: bool) -> str:
    """Recognisers write no punctuation, so models may be trained without it."""
    if strip_punctuation:
        text = _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()
    return text


@dataclass(frozen=True, slots=True)
class Scored:
    logit: float
    word_terms: tuple[
        tuple[str, float], ...
    ]  # readable terms and their contributions, largest first


class TextModel:
    def __init__(self, data: ModelData) -> None:
        self.data = data

    @property
    def threshold(self) -> float:
        return self.data.threshold

    def score(self, text: str, dense: Mapping[str, float]) -> Scored:
        text = model_text(text, self.data.strip_punctuation)
        logit = self.data.intercept
        terms: list[tuple[str, float]] = []
        for vectorizer in self.data.vectorizers:
            values = tfidf(
                analyse(text, vectorizer.analyzer, vectorizer.ngram_range), vectorizer.idf
            )
            for term, value in values.items():
                contribution = value * vectorizer.coef[term]
                logit += contribution
                if vectorizer.analyzer == "word":
                    terms.append((term, contribution))
        for name, coefficient in self.data.dense.items():
            logit += dense.get(name, 0.0) * coefficient
        terms.sort(key=lambda item: (-item[1], item[0]))
        return Scored(logit, tuple(terms))
