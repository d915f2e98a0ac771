"""Training and cross-validation of the text models (needs the ``dev`` extra: scikit-learn).

Used by ``scripts/train_complaints.py`` (writes the shipped models) and
``bench/complaints_eval.py`` (nested cross-validation). The detector never imports this module.

A model is fitted on all its training data; its threshold is the one that maximises F1 on
out-of-fold probabilities of a k-fold cross-validation of the same data, so no figure that is
reported was used to choose it. Fitting is single-threaded and coefficients are rounded, so the
same data gives the same file byte for byte.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cti_server.complaints.features import TextFeatures
from cti_server.complaints.model import model_text
from cti_server.complaints.resources import (
    ANALYZERS,
    MODEL_FORMAT,
    ComplaintDataError,
    DataRoot,
    Weights,
    read_yaml,
)
from cti_server.complaints.text import prepare

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class VectorizerConfig:
    analyzer: str
    ngram_range: tuple[int, int]
    min_df: int


@dataclass(frozen=True, slots=True)
class LanguageConfig:
    data: str
    text_column: str
    label_column: str
    positive_label: str
    strip_punctuation: bool
    C: float
    vectorizers: tuple[VectorizerConfig, ...]
    extra: str | None  # a text,label CSV added to the shipped model's training data


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    seed: int
    threshold_folds: int
    languages: Mapping[str, LanguageConfig]


def load_training_config(root: DataRoot, name: str = "training.yaml") -> TrainingConfig:
    data = read_yaml(root, name)
    languages: dict[str, LanguageConfig] = {}
    try:
        for language, spec in data["languages"].items():
            key = f"languages.{language}"
            vectorizers = []
            for i, v in enumerate(spec["vectorizers"]):
                if v["analyzer"] not in ANALYZERS:
                    raise ComplaintDataError(name, f"{key}.vectorizers[{i}].analyzer", "unknown")
                low, high = v["ngram_range"]
                vectorizers.append(
                    VectorizerConfig(v["analyzer"], (int(low), int(high)), int(v["min_df"]))
                )
            languages[language] = LanguageConfig(
                data=str(spec["data"]),
                text_column=str(spec["text_column"]),
                label_column=str(spec["label_column"]),
                positive_label=str(spec["positive_label"]),
                strip_punctuation=bool(spec["strip_punctuation"]),
                C=float(spec["C"]),
                vectorizers=tuple(vectorizers),
                extra=str(spec["extra"]) if spec.get("extra") else None,
            )
        return TrainingConfig(int(data["seed"]), int(data["threshold_folds"]), languages)
    except KeyError as exc:
        raise ComplaintDataError(name, str(exc.args[0]), "missing") from exc


def read_labelled(
    raw: bytes, name: str, text_column: str, label_column: str, positive_label: str
) -> tuple[list[str], IntArray]:
    """Texts and 0/1 labels of a CSV (gzip-compressed when ``name`` ends with .gz)."""
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    columns = reader.fieldnames or []
    for column in (text_column, label_column):
        if column not in columns:
            raise ComplaintDataError(name, column, f"no such column (has {', '.join(columns)})")
    texts: list[str] = []
    labels: list[int] = []
    for row in reader:
        text = row[text_column] or ""
        if not text.strip():
            continue
        texts.append(text)
        labels.append(1 if row[label_column].strip() == positive_label else 0)
    return texts, np.array(labels, dtype=np.int64)


@dataclass(slots=True)
class Corpus:
    """Texts with their features computed once (they do not depend on the training split)."""

    language: str
    texts: list[str]  # as the vectorizers read them
    dense: FloatArray
    dense_names: tuple[str, ...]
    prior: FloatArray  # cue priors, added to the model's logit
    labels: IntArray
    extra: dict[str, Any] = field(default_factory=dict)


def featurize(
    texts: Sequence[str],
    labels: IntArray,
    language: str,
    features: TextFeatures,
    weights: Weights,
    *,
    strip_punctuation: bool,
    spoken: Sequence[bool] = (),
) -> Corpus:
    """Features of each text; ``spoken`` marks call utterances, addressed to us like any call."""
    names = features.names(language)
    model_texts: list[str] = []
    rows: list[list[float]] = []
    prior: list[float] = []
    for i, text in enumerate(texts):
        prepared = prepare(text, addressed=True if i < len(spoken) and spoken[i] else None)
        values, matches = features.dense(prepared, language)
        rows.append([values[n] for n in names])
        prior.append(features.prior(matches, weights.max_prior))
        model_texts.append(model_text(prepared.text, strip_punctuation))
    return Corpus(
        language,
        model_texts,
        np.array(rows, dtype=np.float64),
        names,
        np.array(prior, dtype=np.float64),
        labels,
    )


@dataclass(slots=True)
class Fitted:
    vectorizers: list[Any]
    classifier: Any

    def logits(self, corpus: Corpus, index: IntArray) -> FloatArray:
        matrix = _matrix(self.vectorizers, corpus, index, fit=False)
        decision: FloatArray = self.classifier.decision_function(matrix)
        return decision + corpus.prior[index]


def _matrix(vectorizers: list[Any], corpus: Corpus, index: IntArray, *, fit: bool) -> Any:
    from scipy import sparse  # noqa: PLC0415 - training only

    texts = [corpus.texts[i] for i in index]
    blocks = [v.fit_transform(texts) if fit else v.transform(texts) for v in vectorizers]
    blocks.append(sparse.csr_matrix(corpus.dense[index]))
    return sparse.hstack(blocks).tocsr()


def fit(corpus: Corpus, index: IntArray, config: LanguageConfig, seed: int) -> Fitted:
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    vectorizers = [
        TfidfVectorizer(
            analyzer=v.analyzer, ngram_range=v.ngram_range, min_df=v.min_df, sublinear_tf=True
        )
        for v in config.vectorizers
    ]
    with threadpool_limits(limits=1):
        matrix = _matrix(vectorizers, corpus, index, fit=True)
        classifier = LogisticRegression(
            C=config.C, class_weight="balanced", max_iter=5000, random_state=seed
        )
        classifier.fit(matrix, corpus.labels[index])
    return Fitted(vectorizers, classifier)


def sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def _folds(labels: IntArray, folds: int, seed: int) -> list[tuple[IntArray, IntArray]]:
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        (np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(len(labels)), labels)
    ]


def out_of_fold(
    corpus: Corpus, index: IntArray, config: LanguageConfig, folds: int, seed: int
) -> FloatArray:
    """Probabilities of ``index``'s texts, each from a model that did not see it."""
    probabilities = np.zeros(len(index), dtype=np.float64)
    for train, test in _folds(corpus.labels[index], folds, seed):
        fitted = fit(corpus, index[train], config, seed)
        probabilities[test] = sigmoid(fitted.logits(corpus, index[test]))
    return probabilities


def prf(labels: IntArray, predicted: NDArray[np.bool_]) -> tuple[float, float, float]:
    tp = float(np.sum(predicted & (labels == 1)))
    fp = float(np.sum(predicted & (labels == 0)))
    fn = float(np.sum(~predicted & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def choose_threshold(probabilities: FloatArray, labels: IntArray) -> float:
    """The threshold on a 0.01 grid with the best F1; among ties, their median."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = np.array([prf(labels, probabilities >= t)[2] for t in grid])
    best = grid[scores >= scores.max() - 1e-12]
    return float(best[len(best) // 2])


def cv_threshold(
    corpus: Corpus, index: IntArray, config: LanguageConfig, folds: int, seed: int
) -> float:
    return choose_threshold(out_of_fold(corpus, index, config, folds, seed), corpus.labels[index])


@dataclass(frozen=True, slots=True)
class NestedResult:
    precision: float
    recall: float
    f1: float
    fold_f1: tuple[float, ...]
    thresholds: tuple[float, ...]


def nested_cv(
    corpus: Corpus, config: LanguageConfig, outer: int, inner: int, seed: int
) -> NestedResult:
    """Outer k-fold: fit on k-1 folds with a threshold from an inner CV of those folds only,
    then predict the held-out fold. Pooled P/R/F1 over all held-out predictions."""
    labels = corpus.labels
    predicted = np.zeros(len(labels), dtype=bool)
    fold_f1: list[float] = []
    thresholds: list[float] = []
    for train, test in _folds(labels, outer, seed):
        threshold = cv_threshold(corpus, train, config, inner, seed)
        fitted = fit(corpus, train, config, seed)
        predicted[test] = sigmoid(fitted.logits(corpus, test)) >= threshold
        thresholds.append(threshold)
        fold_f1.append(prf(labels[test], predicted[test])[2])
    precision, recall, f1 = prf(labels, predicted)
    return NestedResult(precision, recall, f1, tuple(fold_f1), tuple(thresholds))


def _round(x: float) -> float:
    """Six significant digits: enough for scoring, and stable across BLAS builds."""
    return 0.0 if x == 0 else float(f"{x:.6g}")


def export(
    fitted: Fitted,
    corpus: Corpus,
    config: LanguageConfig,
    threshold: float,
    training: Mapping[str, Any],
) -> dict[str, Any]:
    """The model as plain data: per vectorizer, term → [idf, coefficient]; dense coefficients."""
    coef = fitted.classifier.coef_[0]
    vectorizers = []
    offset = 0
    for spec, vectorizer in zip(config.vectorizers, fitted.vectorizers, strict=True):
        vocabulary: dict[str, int] = vectorizer.vocabulary_
        terms = {
            term: [_round(float(vectorizer.idf_[i])), _round(float(coef[offset + i]))]
            for term, i in sorted(vocabulary.items())
        }
        offset += len(vocabulary)
        vectorizers.append(
            {"analyzer": spec.analyzer, "ngram_range": list(spec.ngram_range), "terms": terms}
        )
    dense = {name: _round(float(coef[offset + i])) for i, name in enumerate(corpus.dense_names)}
    return {
        "format": MODEL_FORMAT,
        "language": corpus.language,
        "threshold": threshold,
        "intercept": _round(float(fitted.classifier.intercept_[0])),
        "strip_punctuation": config.strip_punctuation,
        "vectorizers": vectorizers,
        "dense": dense,
        "training": dict(training),
    }


def dump(model: Mapping[str, Any]) -> bytes:
    """Deterministic bytes: sorted keys, no timestamp in the gzip header."""
    text = json.dumps(model, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
