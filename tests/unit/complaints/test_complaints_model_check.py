"""A rebuilt complaint model is judged by what it is and decides, not by its bytes: the drift
another processor or numpy brings passes, a change of data, vocabulary, threshold or decisions
does not."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from cti_server.complaints import training
from cti_server.complaints.features import TextFeatures
from cti_server.complaints.model_check import compare, probabilities
from cti_server.complaints.resources import data_root, load_lexicon, load_weights, parse_model

Model = dict[str, Any]


@pytest.fixture(scope="module")
def fitted() -> tuple[Model, training.Corpus]:
    """A small English model (300 texts), exported as the training script exports it."""
    root = data_root()
    spec = training.load_training_config(root).languages["en"]
    texts, labels = training.read_labelled(
        (root / spec.data).read_bytes(), spec.data, "text", "label", "1"
    )
    corpus = training.featurize(
        texts[:300],
        labels[:300],
        "en",
        TextFeatures(load_lexicon(root)),
        load_weights(root),
        strip_punctuation=spec.strip_punctuation,
    )
    model = training.fit(corpus, np.arange(300), spec, 0)
    exported = training.export(model, corpus, spec, 0.5, {"data": spec.data, "rows": 300})
    return exported, corpus


def _nudged(model: Model, relative: float) -> Model:
    """Every coefficient and idf moved by ``relative``, as other BLAS kernels move them."""
    other = copy.deepcopy(model)
    for vectorizer in other["vectorizers"]:
        for pair in vectorizer["terms"].values():
            pair[0] *= 1 + relative
            pair[1] *= 1 - relative
    other["dense"] = {k: v * (1 + relative) for k, v in other["dense"].items()}
    other["intercept"] *= 1 + relative
    return other


def test_the_same_model_passes(fitted: tuple[Model, training.Corpus]) -> None:
    model, corpus = fitted
    assert compare(model, copy.deepcopy(model), corpus) == []


def test_last_digit_drift_passes_though_the_bytes_differ(
    fitted: tuple[Model, training.Corpus],
) -> None:
    model, corpus = fitted
    drifted = _nudged(model, 1e-6)
    assert training.dump(drifted) != training.dump(model)
    assert compare(model, drifted, corpus) == []


def test_a_changed_vocabulary_or_data_is_named(fitted: tuple[Model, training.Corpus]) -> None:
    model, corpus = fitted
    fewer = copy.deepcopy(model)
    term = sorted(fewer["vectorizers"][0]["terms"])[0]
    del fewer["vectorizers"][0]["terms"][term]
    assert any("1 terms gone" in p and term in p for p in compare(model, fewer, corpus))
    other_data = copy.deepcopy(model)
    other_data["training"]["rows"] = 301
    assert compare(model, other_data, corpus) == ["training.rows: 300 shipped, 301 rebuilt"]


def test_a_moved_threshold_is_named(fitted: tuple[Model, training.Corpus]) -> None:
    model, corpus = fitted
    moved = copy.deepcopy(model)
    moved["threshold"] = 0.55
    assert compare(model, moved, corpus) == ["threshold: 0.5 shipped, 0.55 rebuilt"]
    within = copy.deepcopy(model)
    within["threshold"] = 0.51
    assert compare(model, within, corpus) == []


def test_a_moved_or_missing_calibration_is_named(fitted: tuple[Model, training.Corpus]) -> None:
    model, corpus = fitted
    calibrated = copy.deepcopy(model)
    calibrated["calibration"] = {"slope": 1.2, "intercept": -0.3, "base_rate": 0.36}
    assert compare(model, calibrated, corpus) == [
        f"calibration: None shipped, {calibrated['calibration']} rebuilt"
    ]
    drifted = copy.deepcopy(calibrated)
    drifted["calibration"] = {"slope": 1.2001, "intercept": -0.3001, "base_rate": 0.36}
    assert compare(calibrated, drifted, corpus) == []
    moved = copy.deepcopy(calibrated)
    moved["calibration"] = {"slope": 1.3, "intercept": -0.3, "base_rate": 0.36}
    assert len(compare(calibrated, moved, corpus)) == 1


def test_changed_decisions_are_named_with_examples(fitted: tuple[Model, training.Corpus]) -> None:
    """A text moved across the threshold is named, with the text."""
    model, corpus = fitted
    logits = np.log(1 / probabilities(parse_model(model, "m", "en"), corpus) - 1) * -1
    nearest = int(np.argmin(np.abs(logits)))  # the text closest to the threshold 0.5 (logit 0)
    shifted = copy.deepcopy(model)
    shifted["intercept"] -= 1.5 * logits[nearest]  # just across, the other way
    decided = [p for p in compare(model, shifted, corpus) if "decided otherwise" in p]
    assert len(decided) == 1
    assert "training texts decided otherwise at the threshold 0.5" in decided[0]
    assert repr(corpus.texts[nearest][:60]) in decided[0]


def test_probabilities_are_the_runtime_scores(fitted: tuple[Model, training.Corpus]) -> None:
    """The check scores texts the way the server does: the logistic of the text model's logit and
    the cue prior."""
    model, corpus = fitted
    data = parse_model(model, "model", "en")
    from cti_server.complaints.model import TextModel  # noqa: PLC0415

    text_model = TextModel(data)
    names = corpus.dense_names
    for i in range(20):
        logit = text_model.score(corpus.texts[i], dict(zip(names, corpus.dense[i], strict=True)))
        expected = 1 / (1 + np.exp(-(logit.logit + corpus.prior[i])))
        assert probabilities(data, corpus)[i] == pytest.approx(expected, abs=1e-9)
