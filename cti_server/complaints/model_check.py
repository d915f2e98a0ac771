"""Is a rebuilt complaint model the one we ship? Compared for what it decides, not byte for byte.

A model of floats refitted on another processor (other BLAS kernels, other thread counts) or with
a newer numpy differs in its last digits, so equal bytes would fail on machines where nothing is
wrong. What must hold instead, and what :func:`compare` checks:

- the settings and the provenance exactly: format, language, analyzers and n-gram ranges, the
  training data's hashes and row counts, the regularisation chosen, the embedding model read;
- the vocabulary exactly: the same terms in every vectorizer, the same dense features, as many
  embedding coefficients;
- the numbers within :class:`Tolerance`: document frequencies (integers behind them, so tight),
  coefficients and intercept (relative to the model's largest coefficient), the threshold (on its
  0.01 grid), the calibration (its base rate exactly) and the cross-validation figures;
- what it decides: every training text is a complaint under the rebuilt model exactly when it is
  one under the shipped model, both at the shipped threshold, scored the way the server scores
  (tf-idf from the file's own idf, dense features, cue priors, embeddings).

A change of data, settings or training code moves one of these; a change of processor does not.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cti_server.complaints.resources import ModelData, parse_model
from cti_server.complaints.text import analyse
from cti_server.complaints.training import Corpus, sigmoid

FloatArray = NDArray[np.float64]

# provenance and settings in the file's "training" block that must be the same exactly
_EXACT_TRAINING = (
    "data",
    "data_sha256",
    "domains",
    "domains_sha256",
    "per_label",
    "extra",
    "extra_sha256",
    "rows",
    "positives",
    "C",
)


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a rebuilt model's numbers may drift from the shipped ones."""

    coefficient: float = 0.02  # of the largest |coefficient| of the shipped model
    idf: float = 1e-4  # relative; idf is a function of integer document counts
    threshold: float = 0.02  # two steps of the 0.01 grid it is chosen on
    calibration: float = 0.02  # Platt slope (relative) and intercept (absolute, in logits)
    figure: float = 0.02  # out-of-fold precision, recall, F1


def compare(
    shipped: Mapping[str, Any],
    rebuilt: Mapping[str, Any],
    corpus: Corpus,
    tolerance: Tolerance = Tolerance(),
) -> list[str]:
    """What differs in a way that matters, one line each; empty when the models agree."""
    problems = _settings(shipped, rebuilt)
    if problems:  # numbers of different vocabularies or settings cannot be compared
        return problems
    problems += _numbers(shipped, rebuilt, tolerance)
    language = str(shipped["language"])
    old = parse_model(shipped, "shipped", language)
    new = parse_model(rebuilt, "rebuilt", language)
    threshold = old.threshold
    counted: dict[tuple[Any, ...], Any] = {}  # the vocabularies are the same: counted once
    before = probabilities(old, corpus, counted) >= threshold
    after = probabilities(new, corpus, counted) >= threshold
    flipped = np.flatnonzero(before != after)
    if flipped.size:
        examples = "; ".join(repr(corpus.texts[i][:60]) for i in flipped[:3])
        problems.append(
            f"{flipped.size} of {len(corpus.texts)} training texts decided otherwise at the "
            f"threshold {threshold} (e.g. {examples})"
        )
    return problems


def probabilities(
    model: ModelData, corpus: Corpus, counted: dict[tuple[Any, ...], Any] | None = None
) -> FloatArray:
    """The server's probability for each text of ``corpus``: the text model's logit plus the cue
    prior, as :class:`~cti_server.complaints.detector.ComplaintDetector` adds them (the runtime's
    analyzers and tf-idf, :func:`~cti_server.complaints.text.tfidf`, over a whole corpus at once).
    ``counted``: n-gram counts kept for another model of the same vocabulary."""
    counted = {} if counted is None else counted
    logits = np.full(len(corpus.texts), model.intercept, dtype=np.float64)
    for vectorizer in model.vectorizers:
        terms = list(vectorizer.idf)
        key = (vectorizer.analyzer, tuple(vectorizer.ngram_range), tuple(terms))
        if key not in counted:
            counted[key] = term_counts(
                corpus.texts, vectorizer.analyzer, vectorizer.ngram_range, terms
            )
        counts = counted[key]
        idf = np.array([vectorizer.idf[t] for t in terms], dtype=np.float64)
        coef = np.array([vectorizer.coef.get(t, 0.0) for t in terms], dtype=np.float64)
        logits += tfidf_logits(counts, idf, coef)
    dense = np.array([model.dense.get(name, 0.0) for name in corpus.dense_names])
    logits += corpus.dense @ dense
    if model.embedding is not None:
        if corpus.embeddings is None:
            raise ValueError("the model reads embeddings; embed the corpus first (Corpus.embed)")
        logits += corpus.embeddings @ np.array(model.embedding.coef, dtype=np.float64)
    return sigmoid(logits + corpus.prior)


def term_counts(
    texts: Sequence[str], analyzer: str, ngram_range: tuple[int, int], terms: Sequence[str]
) -> Any:
    """Each text's count of each of ``terms`` (a sparse matrix), by the runtime's analyzer."""
    from scipy import sparse  # noqa: PLC0415 - training only

    column = {term: j for j, term in enumerate(terms)}
    rows: list[int] = []
    columns: list[int] = []
    values: list[int] = []
    for i, text in enumerate(texts):
        counted = Counter(column[g] for g in analyse(text, analyzer, ngram_range) if g in column)
        rows += [i] * len(counted)
        columns += counted.keys()
        values += counted.values()
    return sparse.csr_matrix(
        (np.array(values, dtype=np.float64), (rows, columns)), shape=(len(texts), len(terms))
    )


def tfidf_logits(counts: Any, idf: FloatArray, coef: FloatArray) -> FloatArray:
    """Sum of coefficient x sublinear tf-idf, l2-normalised per text (text.tfidf's formula)."""
    weights = counts.copy()
    weights.data = (1.0 + np.log(weights.data)) * idf[weights.indices]
    norm = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
    raw = np.asarray(weights @ coef).ravel()
    result: FloatArray = np.divide(raw, norm, out=np.zeros_like(raw), where=norm > 0)
    return result


def _settings(shipped: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> list[str]:
    problems = [
        f"{key}: {shipped.get(key)!r} shipped, {rebuilt.get(key)!r} rebuilt"
        for key in ("format", "language", "strip_punctuation")
        if shipped.get(key) != rebuilt.get(key)
    ]
    old_training, new_training = shipped.get("training", {}), rebuilt.get("training", {})
    problems += [
        f"training.{key}: {old_training.get(key)!r} shipped, {new_training.get(key)!r} rebuilt"
        for key in _EXACT_TRAINING
        if old_training.get(key) != new_training.get(key)
    ]
    old_vectorizers, new_vectorizers = shipped["vectorizers"], rebuilt["vectorizers"]
    if len(old_vectorizers) != len(new_vectorizers):
        return [*problems, f"{len(old_vectorizers)} vectorizers shipped, {len(new_vectorizers)}"]
    for i, (old, new) in enumerate(zip(old_vectorizers, new_vectorizers, strict=True)):
        for key in ("analyzer", "ngram_range"):
            if old[key] != new[key]:
                problems.append(f"vectorizers[{i}].{key}: {old[key]!r} shipped, {new[key]!r}")
        gone, added = old["terms"].keys() - new["terms"].keys(), new["terms"].keys() - old["terms"]
        if gone or added:
            problems.append(
                f"vectorizers[{i}] vocabulary: {len(gone)} terms gone "
                f"{sorted(gone)[:3]}, {len(added)} added {sorted(added)[:3]}"
            )
    if shipped["dense"].keys() != rebuilt["dense"].keys():
        problems.append(
            f"dense features: {sorted(shipped['dense'])} shipped, {sorted(rebuilt['dense'])}"
        )
    old_e, new_e = shipped.get("embedding"), rebuilt.get("embedding")
    if (old_e is None) != (new_e is None):
        problems.append(f"embedding: {old_e is not None} shipped, {new_e is not None} rebuilt")
    elif old_e is not None and new_e is not None:
        for key in ("package", "variant", "kind"):
            if old_e[key] != new_e[key]:
                problems.append(f"embedding.{key}: {old_e[key]!r} shipped, {new_e[key]!r}")
        if len(old_e["coef"]) != len(new_e["coef"]):
            problems.append(f"embedding: {len(old_e['coef'])} dimensions, {len(new_e['coef'])}")
    return problems


def _numbers(
    shipped: Mapping[str, Any], rebuilt: Mapping[str, Any], tolerance: Tolerance
) -> list[str]:
    """Weights, idf, threshold and figures within ``tolerance`` (settings already equal)."""
    problems = []
    drift, worst = coefficient_drift(shipped, rebuilt)
    if drift > tolerance.coefficient:
        old, new = _coefficients(shipped)[worst], _coefficients(rebuilt)[worst]
        problems.append(
            f"coefficient {worst}: {old} shipped, {new} rebuilt (moved {drift:.2%} of the "
            f"largest coefficient; {tolerance.coefficient:.0%} allowed)"
        )
    for i, (old, new) in enumerate(
        zip(shipped["vectorizers"], rebuilt["vectorizers"], strict=True)
    ):
        for term, (idf, _) in old["terms"].items():
            if not math.isclose(idf, new["terms"][term][0], rel_tol=tolerance.idf):
                problems.append(f"vectorizers[{i}] idf of {term!r}: {idf}, {new['terms'][term][0]}")
                break
    if abs(shipped["threshold"] - rebuilt["threshold"]) > tolerance.threshold + 1e-9:
        problems.append(
            f"threshold: {shipped['threshold']} shipped, {rebuilt['threshold']} rebuilt"
        )
    problems += _calibration(shipped, rebuilt, tolerance)
    old_fig = shipped.get("training", {}).get("out_of_fold_at_threshold", {})
    new_fig = rebuilt.get("training", {}).get("out_of_fold_at_threshold", {})
    for key in sorted(old_fig.keys() | new_fig.keys()):
        if abs(old_fig.get(key, math.inf) - new_fig.get(key, -math.inf)) > tolerance.figure:
            problems.append(f"out-of-fold {key}: {old_fig.get(key)} shipped, {new_fig.get(key)}")
    return problems


def _calibration(
    shipped: Mapping[str, Any], rebuilt: Mapping[str, Any], tolerance: Tolerance
) -> list[str]:
    old, new = shipped.get("calibration"), rebuilt.get("calibration")
    if old is None or new is None:
        return [] if old is new else [f"calibration: {old} shipped, {new} rebuilt"]
    moved = [
        abs(old["slope"] - new["slope"]) > tolerance.calibration * abs(old["slope"]),
        abs(old["intercept"] - new["intercept"]) > tolerance.calibration,
        old["base_rate"] != new["base_rate"],
    ]
    return [f"calibration: {old} shipped, {new} rebuilt"] if any(moved) else []


def coefficient_drift(shipped: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> tuple[float, str]:
    """The largest move of any coefficient, as a fraction of the shipped model's largest
    |coefficient|, and which one moved it (models of one vocabulary)."""
    old, new = _coefficients(shipped), _coefficients(rebuilt)
    scale = max((abs(c) for c in old.values()), default=0.0) or 1.0
    worst = max(old, key=lambda k: abs(old[k] - new[k]))
    return abs(old[worst] - new[worst]) / scale, worst


def _coefficients(model: Mapping[str, Any]) -> dict[str, float]:
    """Every coefficient of a model by a name unique within it."""
    found = {"intercept": float(model["intercept"])}
    for i, vectorizer in enumerate(model["vectorizers"]):
        found.update({f"{i}:{term}": float(pair[1]) for term, pair in vectorizer["terms"].items()})
    found.update({f"dense:{name}": float(c) for name, c in model["dense"].items()})
    embedding = model.get("embedding")
    if embedding is not None:
        found.update({f"embedding[{j}]": float(c) for j, c in enumerate(embedding["coef"])})
    return found
