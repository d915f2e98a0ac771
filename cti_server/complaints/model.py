"""The trained linear text model, scored without scikit-learn from its data file.

logit = intercept + Σ tf-idf(n-gram) x coefficient + Σ dense feature x coefficient
[+ sentence embedding · coefficients], where the tf-idf is computed exactly as the vectorizers
did in training (see :mod:`.text`) and the embedding, for the model that reads one, comes from
the optional ``embeddings`` extra (see :mod:`.embeddings`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cti_server.complaints.embeddings import Embedder
from cti_server.complaints.resources import ModelData
from cti_server.complaints.text import analyse, tfidf

# the most characters of a text that are embedded: a written message or a window of spoken
# turns is shorter (a Chinese model was trained on reviews cut to 160); a window of long turns,
# as a recogniser that cuts nothing gives, would cost seconds (a token is about a character)
EMBEDDED_CHARACTERS = 300

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
        e = data.embedding
        self._embedder = Embedder(e.package, e.variant, e.kind) if e is not None else None
        self._embedding_coef = np.array(e.coef if e is not None else (), dtype=np.float64)

    def load(self) -> None:
        """Load what scoring reads lazily (the embedding engine), so the first call waits not."""
        if self._embedder is not None:
            self._embedder.load()

    @property
    def threshold(self) -> float:
        return self.data.threshold

    @property
    def reads_embeddings(self) -> bool:
        return self._embedder is not None

    def score(self, text: str, dense: Mapping[str, float], *, embedded: bool = True) -> Scored:
        """``embedded=False``: without the sentence embedding's part (:meth:`embedding_logit`),
        which costs about a hundred times the rest: a call ranks its windows without it."""
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
        if embedded:
            logit += self.embedding_logit(text)
        terms.sort(key=lambda item: (-item[1], item[0]))
        return Scored(logit, tuple(terms))

    def embedding_logit(self, text: str) -> float:
        """The sentence embedding's part of the logit (0 for a model that reads none)."""
        if self._embedder is None:
            return 0.0
        text = model_text(text, self.data.strip_punctuation)[:EMBEDDED_CHARACTERS]
        return float(self._embedder.embed(text) @ self._embedding_coef)
