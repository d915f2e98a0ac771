"""Training and cross-validation of the text models (needs the ``dev`` extra: scikit-learn).

Used by ``scripts/train_complaints.py`` (writes the shipped models) and
``bench/complaints_eval.py`` (nested cross-validation). The detector never imports this module.

A model is fitted on all its training data; its threshold is the one that maximises F1 on
out-of-fold probabilities of a k-fold cross-validation of the same data, so no figure that is
reported was used to choose it, and its calibration (Platt scaling) is fitted on the same
out-of-fold logits. A language may train on several kinds of business (domains): texts are
deduplicated and at most ``per_label`` texts of each label are taken from each domain, or,
weighted, every text is taken and the texts of each label of each domain weigh together as much
as ``per_label`` texts, so that no domain dominates. Fitting is single-threaded and coefficients
are rounded, so on one machine the same data gives the same file byte for byte; another
processor's BLAS kernels or another numpy change the last digits, which :mod:`.model_check`
tells apart from a real change.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cti_server.complaints.features import TextFeatures
from cti_server.complaints.model import model_text
from cti_server.complaints.resources import (
    ANALYZERS,
    MODEL_FORMAT,
    Calibration,
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
class EmbeddingConfig:
    """The second model of a language, which also reads sentence embeddings."""

    package: str
    variant: str
    kind: str
    C: tuple[float, ...]  # chosen among by cross-validation inside the training data
    nb: bool  # NB-weighted n-grams (Wang & Manning 2012): tf-idf x log-count ratio
    max_chars: int | None = None  # texts cut to this many characters before embedding
    per_label: int | None = None  # fewer texts per label and domain than the linear model's


@dataclass(frozen=True, slots=True)
class DomainsConfig:
    """More kinds of business beside the language's main data, and how many texts of each."""

    data: str  # a CSV of the same text and label columns and a domain column
    column: str
    main: str  # the domain of the main data's texts
    per_label: int  # at most this many texts of each label from each domain (weighted: as much)
    weighted: bool = False  # every text, weighted (see domain_weights), instead of a sample


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
    embedding: EmbeddingConfig | None = None
    use_embedding: bool = False  # this config trains the embedding model
    C_choices: tuple[float, ...] = ()  # when set, C is chosen among them by cross-validation
    domains: DomainsConfig | None = None
    folds: int | None = None  # of the threshold's cross-validation, when not the config's

    def with_embedding(self) -> LanguageConfig:
        """The config of the language's embedding model."""
        if self.embedding is None:
            raise ValueError("no embedding model configured")
        domains = self.domains
        if domains is not None and self.embedding.per_label is not None:
            # a sample: each text is embedded, which bounds the time to train
            domains = replace(domains, per_label=self.embedding.per_label, weighted=False)
        return replace(
            self,
            C=self.embedding.C[0],
            C_choices=self.embedding.C,
            use_embedding=True,
            domains=domains,
        )

    @property
    def nb(self) -> bool:
        return self.use_embedding and self.embedding is not None and self.embedding.nb


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
            embedding = None
            if spec.get("embedding"):
                e = spec["embedding"]
                embedding = EmbeddingConfig(
                    package=str(e["package"]),
                    variant=str(e["variant"]),
                    kind=str(e["kind"]),
                    C=tuple(float(c) for c in e["C"]),
                    nb=bool(e["nb"]),
                    max_chars=int(e["max_chars"]) if e.get("max_chars") else None,
                    per_label=int(e["per_label"]) if e.get("per_label") else None,
                )
            domains = None
            if spec.get("domains"):
                d = spec["domains"]
                domains = DomainsConfig(
                    str(d["data"]),
                    str(d["column"]),
                    str(d["main"]),
                    int(d["per_label"]),
                    bool(d.get("weighted", False)),
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
                embedding=embedding,
                domains=domains,
                folds=int(spec["threshold_folds"]) if spec.get("threshold_folds") else None,
            )
        return TrainingConfig(int(data["seed"]), int(data["threshold_folds"]), languages)
    except KeyError as exc:
        raise ComplaintDataError(name, str(exc.args[0]), "missing") from exc


def read_labelled(
    raw: bytes, name: str, text_column: str, label_column: str, positive_label: str
) -> tuple[list[str], IntArray]:
    """Texts and 0/1 labels of a CSV (gzip-compressed when ``name`` ends with .gz)."""
    texts, labels, _ = read_domains(
        raw, name, text_column, label_column, positive_label, domain_column=None
    )
    return texts, labels


def read_domains(
    raw: bytes,
    name: str,
    text_column: str,
    label_column: str,
    positive_label: str,
    *,
    domain_column: str | None,
) -> tuple[list[str], IntArray, list[str]]:
    """Texts, 0/1 labels and each text's domain (``""`` without a domain column) of a CSV."""
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    columns = reader.fieldnames or []
    for column in (text_column, label_column, domain_column):
        if column is not None and column not in columns:
            raise ComplaintDataError(name, column, f"no such column (has {', '.join(columns)})")
    texts: list[str] = []
    labels: list[int] = []
    domains: list[str] = []
    for row in reader:
        text = row[text_column] or ""
        if not text.strip():
            continue
        texts.append(text)
        labels.append(1 if row[label_column].strip() == positive_label else 0)
        domains.append(row[domain_column] if domain_column is not None else "")
    return texts, np.array(labels, dtype=np.int64), domains


@dataclass(frozen=True, slots=True)
class Labelled:
    """Training texts of one language with their labels and kinds of business."""

    texts: list[str]
    labels: IntArray
    domains: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def clean(labelled: Labelled) -> Labelled:
    """Byte-order marks removed, texts trimmed, and each text once: a text seen again with the
    same label is dropped, a text seen with both labels is dropped everywhere."""
    first: dict[str, int] = {}
    conflicting: set[str] = set()
    cleaned = [t.replace("\ufeff", "").strip() for t in labelled.texts]
    for i, text in enumerate(cleaned):
        if not text:
            continue
        if text not in first:
            first[text] = i
        elif labelled.labels[first[text]] != labelled.labels[i]:
            conflicting.add(text)
    keep = [i for t, i in first.items() if t not in conflicting]
    return Labelled(
        [cleaned[i] for i in keep],
        labelled.labels[keep],
        [labelled.domains[i] for i in keep],
    )


def text_order(text: str) -> str:
    """A text's place in a sample: by hash, so a sample does not depend on the file's order."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def balanced(labelled: Labelled, per_label: int, domains: Sequence[str] | None = None) -> IntArray:
    """Indices of at most ``per_label`` texts of each label from each domain (of ``domains``,
    else all), the first by :func:`text_order`; ascending."""
    chosen: list[int] = []
    wanted = set(labelled.domains) if domains is None else set(domains)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (domain, label) in enumerate(zip(labelled.domains, labelled.labels, strict=True)):
        if domain in wanted:
            groups.setdefault((domain, int(label)), []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: text_order(labelled.texts[i]))
        chosen += members[:per_label]
    return np.array(sorted(chosen), dtype=np.int64)


def training_index(
    labelled: Labelled, spec: DomainsConfig, domains: Sequence[str] | None = None
) -> IntArray:
    """The texts of ``domains`` (else all) that a model of ``spec`` trains on: every one when
    weighted, else a balanced sample (:func:`balanced`); ascending."""
    if not spec.weighted:
        return balanced(labelled, spec.per_label, domains)
    wanted = set(labelled.domains) if domains is None else set(domains)
    return np.array([i for i, d in enumerate(labelled.domains) if d in wanted], dtype=np.int64)


def domain_weights(domains: Sequence[str], labels: IntArray, per_label: int) -> FloatArray:
    """Sample weights by which the texts of each label of each domain weigh together as much as
    ``per_label`` texts (a small domain's count more, a large one's less), so that every review
    teaches and no domain dominates; a text of no domain (``""``: the spoken extra) weighs one
    text. Scaled to a mean of 1, so the regularisation keeps its strength."""
    weights = np.ones(len(labels), dtype=np.float64)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (domain, label) in enumerate(zip(domains, labels, strict=True)):
        if domain:
            groups.setdefault((domain, int(label)), []).append(i)
    for members in groups.values():
        weights[members] = per_label / len(members)
    scaled: FloatArray = weights * len(weights) / weights.sum()
    return scaled


def subset(labelled: Labelled, index: IntArray) -> Labelled:
    return Labelled(
        [labelled.texts[i] for i in index],
        labelled.labels[index],
        [labelled.domains[i] for i in index],
    )


def read_training_data(root: DataRoot, spec: LanguageConfig) -> tuple[Labelled, dict[str, Any]]:
    """A language's training texts (without ``extra``), cleaned and balanced across domains
    when it has several, and the provenance of the files read."""
    raw = (root / spec.data).read_bytes()
    texts, labels, _ = read_domains(
        raw, spec.data, spec.text_column, spec.label_column, spec.positive_label, domain_column=None
    )
    provenance: dict[str, Any] = {"data": spec.data, "data_sha256": hashlib.sha256(raw).hexdigest()}
    if spec.domains is None:
        return Labelled(texts, labels, [""] * len(texts)), provenance
    d = spec.domains
    more_raw = (root / d.data).read_bytes()
    more, more_labels, more_domains = read_domains(
        more_raw,
        d.data,
        spec.text_column,
        spec.label_column,
        spec.positive_label,
        domain_column=d.column,
    )
    everything = clean(
        Labelled(
            texts + more,
            np.concatenate([labels, more_labels]),
            [d.main] * len(texts) + more_domains,
        )
    )
    provenance.update(
        domains=d.data,
        domains_sha256=hashlib.sha256(more_raw).hexdigest(),
        per_label=d.per_label,
        **({"weighted": True} if d.weighted else {}),
    )
    return subset(everything, training_index(everything, d)), provenance


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
    embeddings: FloatArray | None = None  # of ``texts``, when an embedding model is trained
    domains: list[str] = field(default_factory=list)  # each text's, for weighted training
    _counts: dict[tuple[str, tuple[int, int]], tuple[Any, Any]] = field(
        default_factory=dict, repr=False
    )

    def counts(self, analyzer: str, ngram_range: tuple[int, int]) -> tuple[Any, Any]:
        """Every text's n-gram counts over every term (a sparse matrix) and the terms, sorted:
        counted once, and each fold's vocabulary, idf and tf-idf taken from its rows, not counted
        again per fold (most of a Chinese rebuild's time was counting the same texts 11 times)."""
        key = (analyzer, ngram_range)
        if key not in self._counts:
            from sklearn.feature_extraction.text import CountVectorizer  # noqa: PLC0415

            counter = CountVectorizer(analyzer=analyzer, ngram_range=ngram_range)
            matrix = counter.fit_transform(self.texts).tocsr()
            self._counts[key] = (matrix, counter.get_feature_names_out())
        return self._counts[key]

    def embed(self, embedding: EmbeddingConfig, cache: Path | None = None) -> None:
        """Sentence embeddings of the texts (needs the embeddings extra; about 50 ms a text),
        kept in ``cache`` between runs when given."""
        from cti_server.complaints.embeddings import Embedder, EmbeddingCache  # noqa: PLC0415

        embedder = Embedder(embedding.package, embedding.variant, embedding.kind)
        kept = EmbeddingCache(embedder, cache, embedding.max_chars)
        self.embeddings = kept.embed_all(self.texts)


def featurize(
    texts: Sequence[str],
    labels: IntArray,
    language: str,
    features: TextFeatures,
    weights: Weights,
    *,
    strip_punctuation: bool,
    spoken: Sequence[bool] = (),
    domains: Sequence[str] = (),
) -> Corpus:
    """Features of each text; ``spoken`` marks call utterances, addressed to us like any call;
    ``domains``: each text's kind of business (``""`` for none), which weighted training reads."""
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
        domains=list(domains),
    )


class Grams:
    """scikit-learn's TfidfVectorizer(sublinear_tf=True, min_df=...) fitted on some texts of a
    corpus, from the corpus's counts: the same vocabulary (terms in at least ``min_df`` of those
    texts), idf and tf-idf, to the last bits of a float sum."""

    def __init__(self, config: VectorizerConfig) -> None:
        self.config = config
        self.vocabulary_: dict[str, int] = {}
        self.idf_: FloatArray = np.zeros(0)
        self._columns: IntArray = np.zeros(0, dtype=np.int64)
        self._terms: Any = None
        self._transformer: Any = None

    def _rows(self, corpus: Corpus, index: IntArray) -> Any:
        counts, terms = corpus.counts(self.config.analyzer, self.config.ngram_range)
        if self._terms is not None and terms is not self._terms:
            raise ValueError("a fitted model scores the corpus it was fitted on")
        self._terms = terms
        return counts[index]

    def fit_transform(self, corpus: Corpus, index: IntArray) -> Any:
        from sklearn.feature_extraction.text import TfidfTransformer  # noqa: PLC0415

        rows = self._rows(corpus, index)
        frequency = np.bincount(rows.indices, minlength=rows.shape[1])
        self._columns = np.flatnonzero(frequency >= self.config.min_df)
        self.vocabulary_ = {str(self._terms[j]): i for i, j in enumerate(self._columns)}
        self._transformer = TfidfTransformer(sublinear_tf=True).fit(rows[:, self._columns])
        self.idf_ = self._transformer.idf_
        return self._transformer.transform(rows[:, self._columns])

    def transform(self, corpus: Corpus, index: IntArray) -> Any:
        return self._transformer.transform(self._rows(corpus, index)[:, self._columns])


@dataclass(slots=True)
class Fitted:
    vectorizers: list[Grams]
    classifier: Any
    ratio: FloatArray | None  # NB log-count ratio of each n-gram column, when NB-weighted
    embedding: bool

    def logits(self, corpus: Corpus, index: IntArray) -> FloatArray:
        matrix = self.matrix(corpus, index, fit=False)
        decision: FloatArray = self.classifier.decision_function(matrix)
        return decision + corpus.prior[index]

    def matrix(self, corpus: Corpus, index: IntArray, *, fit: bool) -> Any:
        from scipy import sparse  # noqa: PLC0415 - training only

        grams = sparse.hstack(
            [
                v.fit_transform(corpus, index) if fit else v.transform(corpus, index)
                for v in self.vectorizers
            ]
        ).tocsr()
        if fit and self.ratio is not None:
            self.ratio = _log_count_ratio(grams, corpus.labels[index])
        if self.ratio is not None:
            grams = grams.multiply(self.ratio).tocsr()
        blocks = [grams, sparse.csr_matrix(corpus.dense[index])]
        if self.embedding:
            if corpus.embeddings is None:
                raise ValueError("the corpus has no embeddings (Corpus.embed)")
            blocks.append(sparse.csr_matrix(corpus.embeddings[index]))
        return sparse.hstack(blocks).tocsr()


def _log_count_ratio(grams: Any, labels: IntArray, alpha: float = 1.0) -> FloatArray:
    """log((p/|p|) / (q/|q|)) with p, q the smoothed feature sums of each class (NB-LR)."""
    p = alpha + np.asarray(grams[labels == 1].sum(axis=0), dtype=np.float64).ravel()
    q = alpha + np.asarray(grams[labels == 0].sum(axis=0), dtype=np.float64).ravel()
    ratio: FloatArray = np.log((p / p.sum()) / (q / q.sum()))
    return ratio


def fit(corpus: Corpus, index: IntArray, config: LanguageConfig, seed: int) -> Fitted:
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    vectorizers = [Grams(v) for v in config.vectorizers]
    fitted = Fitted(
        vectorizers, None, np.zeros(0) if config.nb else None, embedding=config.use_embedding
    )
    with threadpool_limits(limits=1):
        matrix = fitted.matrix(corpus, index, fit=True)
        fitted.classifier = LogisticRegression(
            C=config.C, class_weight="balanced", max_iter=5000, random_state=seed
        )
        fitted.classifier.fit(
            matrix, corpus.labels[index], sample_weight=_weights(corpus, index, config)
        )
    return fitted


def _weights(corpus: Corpus, index: IntArray, config: LanguageConfig) -> FloatArray | None:
    """Sample weights of ``index``'s texts when the language trains weighted (else None)."""
    d = config.domains
    if d is None or not d.weighted:
        return None
    if len(corpus.domains) != len(corpus.texts):
        raise ValueError("weighted training needs each text's domain (featurize(domains=...))")
    return domain_weights([corpus.domains[i] for i in index], corpus.labels[index], d.per_label)


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
    """Logits (with the cue priors) of ``index``'s texts, each from a model that did not see it."""
    logits = np.zeros(len(index), dtype=np.float64)
    for train, test in _folds(corpus.labels[index], folds, seed):
        fitted = fit(corpus, index[train], config, seed)
        logits[test] = fitted.logits(corpus, index[test])
    return logits


def platt(logits: FloatArray, labels: IntArray) -> Calibration:
    """Platt scaling: the slope and intercept of a logistic regression of the labels on the
    (out-of-fold) logits, unweighted, so the result is a probability at the labels' base rate.
    The class-balanced training pushes raw logits towards a 50 % base rate; this undoes it."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    regression = LogisticRegression(C=1e6, max_iter=1000)
    regression.fit(logits.reshape(-1, 1), labels)
    return Calibration(
        slope=_round(float(regression.coef_[0][0])),
        intercept=_round(float(regression.intercept_[0])),
        base_rate=_round(float(np.mean(labels))),
    )


def calibrated(calibration: Calibration, logits: FloatArray) -> FloatArray:
    """Calibrated probabilities at the training base rate."""
    return sigmoid(calibration.slope * logits + calibration.intercept)


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


@dataclass(frozen=True, slots=True)
class Choice:
    config: LanguageConfig  # with the C chosen
    threshold: float
    out_of_fold: FloatArray  # probabilities (uncalibrated)
    logits: FloatArray  # the same, as logits: what the calibration is fitted on


def choose(
    corpus: Corpus, index: IntArray, config: LanguageConfig, folds: int, seed: int
) -> Choice:
    """C (among ``config.C_choices``, if any) and threshold with the best out-of-fold F1 of a
    k-fold cross-validation of ``index`` only; the first C among equals."""
    best: tuple[float, Choice] | None = None
    labels = corpus.labels[index]
    for c in config.C_choices or (config.C,):
        candidate = replace(config, C=c)
        logits = out_of_fold(corpus, index, candidate, folds, seed)
        probabilities = sigmoid(logits)
        threshold = choose_threshold(probabilities, labels)
        f1 = prf(labels, probabilities >= threshold)[2]
        if best is None or f1 > best[0] + 1e-12:
            best = (f1, Choice(candidate, threshold, probabilities, logits))
    assert best is not None
    return best[1]


@dataclass(frozen=True, slots=True)
class NestedResult:
    precision: float
    recall: float
    f1: float
    fold_f1: tuple[float, ...]
    thresholds: tuple[float, ...]
    C: tuple[float, ...]
    logits: FloatArray  # every text's, from the outer model that did not see it
    calibrated: FloatArray  # the same through that model's calibration
    base_rate: float  # of the whole corpus (each training part's, within a text, by stratifying)


@dataclass(frozen=True, slots=True)
class Trained:
    """A model fitted on some texts, with the C, threshold and calibration their own k-fold
    cross-validation chose."""

    fitted: Fitted
    choice: Choice
    calibration: Calibration

    def calibrated(self, corpus: Corpus, index: IntArray) -> tuple[FloatArray, FloatArray]:
        """Raw logits and calibrated probabilities of ``index``'s texts."""
        logits = self.fitted.logits(corpus, index)
        return logits, calibrated(self.calibration, logits)


def train(
    corpus: Corpus, index: IntArray, config: LanguageConfig, folds: int, seed: int
) -> Trained:
    choice = choose(corpus, index, config, folds, seed)
    calibration = platt(choice.logits, corpus.labels[index])
    return Trained(fit(corpus, index, choice.config, seed), choice, calibration)


def nested_cv(
    corpus: Corpus, config: LanguageConfig, outer: int, inner: int, seed: int
) -> NestedResult:
    """Outer k-fold: fit on k-1 folds with C and threshold from an inner CV of those folds only,
    then predict the held-out fold. Pooled P/R/F1 over all held-out predictions."""
    labels = corpus.labels
    predicted = np.zeros(len(labels), dtype=bool)
    logits = np.zeros(len(labels), dtype=np.float64)
    probabilities = np.zeros(len(labels), dtype=np.float64)
    fold_f1: list[float] = []
    thresholds: list[float] = []
    chosen_c: list[float] = []
    for part, test in _folds(labels, outer, seed):
        trained = train(corpus, part, config, inner, seed)
        logits[test], probabilities[test] = trained.calibrated(corpus, test)
        predicted[test] = sigmoid(logits[test]) >= trained.choice.threshold
        thresholds.append(trained.choice.threshold)
        chosen_c.append(trained.choice.config.C)
        fold_f1.append(prf(labels[test], predicted[test])[2])
    precision, recall, f1 = prf(labels, predicted)
    return NestedResult(
        precision,
        recall,
        f1,
        tuple(fold_f1),
        tuple(thresholds),
        tuple(chosen_c),
        logits,
        probabilities,
        float(np.mean(labels)),
    )


def held_out(
    corpus: Corpus,
    train_on: IntArray,
    test_on: IntArray,
    config: LanguageConfig,
    *,
    inner: int,
    seed: int,
) -> tuple[float, float, float]:
    """P/R/F1 on ``test_on`` of a model trained on ``train_on`` alone (C and threshold from an
    inner cross-validation of it): e.g. businesses it never saw."""
    trained = train(corpus, train_on, config, inner, seed)
    predicted = sigmoid(trained.fitted.logits(corpus, test_on)) >= trained.choice.threshold
    return prf(corpus.labels[test_on], predicted)


def _round(x: float) -> float:
    """Six significant digits: enough for scoring, and stable across BLAS builds."""
    return 0.0 if x == 0 else float(f"{x:.6g}")


def export(
    fitted: Fitted,
    corpus: Corpus,
    config: LanguageConfig,
    threshold: float,
    training: Mapping[str, Any],
    *,
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """The model as plain data: per vectorizer, term → [idf, coefficient]; dense coefficients;
    embedding coefficients. An NB weight is folded into its n-gram's coefficient."""
    coef = np.array(fitted.classifier.coef_[0], dtype=np.float64)
    grams = sum(len(v.vocabulary_) for v in fitted.vectorizers)
    if fitted.ratio is not None:
        coef[:grams] *= fitted.ratio
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
    offset += len(corpus.dense_names)
    extra: dict[str, Any] = {}
    if fitted.embedding and config.embedding is not None:
        extra["embedding"] = {
            "package": config.embedding.package,
            "variant": config.embedding.variant,
            "kind": config.embedding.kind,
            "coef": [_round(float(c)) for c in coef[offset:]],
        }
    if calibration is not None:
        extra["calibration"] = {
            "slope": calibration.slope,
            "intercept": calibration.intercept,
            "base_rate": calibration.base_rate,
        }
    return {
        **extra,
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
