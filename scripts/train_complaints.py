#!/usr/bin/env python3
"""Rebuild the complaint detector's text models from the labelled data in the repository.

    .venv/bin/python scripts/train_complaints.py            # writes data/model_{en,zh}.json.gz
    .venv/bin/python scripts/train_complaints.py --check    # fails if a shipped model differs

Everything it reads is in cti_server/complaints/data (training.yaml says what); the output is
the same byte for byte on every run. Needs the dev extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cti_server.complaints import training  # noqa: E402
from cti_server.complaints.features import TextFeatures  # noqa: E402
from cti_server.complaints.resources import load_lexicon, load_weights, model_file  # noqa: E402

DATA = ROOT / "cti_server" / "complaints" / "data"


def build(language: str) -> bytes:
    config = training.load_training_config(DATA)
    spec = config.languages[language]
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
    everything = np.arange(len(labels))
    oof = training.out_of_fold(corpus, everything, spec, config.threshold_folds, config.seed)
    threshold = training.choose_threshold(oof, labels)
    precision, recall, f1 = training.prf(labels, oof >= threshold)
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
            "out_of_fold_at_threshold": {
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
            },
        },
    )
    return training.dump(model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", action="append", choices=["en", "zh"])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files")
    args = parser.parse_args()
    status = 0
    for language in args.language or ["en", "zh"]:
        started = time.perf_counter()
        data = build(language)
        path = DATA / model_file(language)
        if args.check:
            same = path.exists() and path.read_bytes() == data
            print(f"{path.name}: {'identical' if same else 'DIFFERS'}")
            status |= 0 if same else 1
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
