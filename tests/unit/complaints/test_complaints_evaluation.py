"""The figures a manager acts on: precision where complaints are rare, calibration, and which
complaints count as indirect; and the training data's cleaning, balance and Platt scaling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cti_server.complaints import evaluation, training
from cti_server.complaints.features import TextFeatures
from cti_server.complaints.resources import data_root, load_lexicon, load_weights


def test_precision_at_a_realistic_rate_reweights_the_test_set() -> None:
    """Half complaints in the test set, 5 % in the field: the same TPR and FPR give a far
    lower precision there, by the formula rate*TPR / (rate*TPR + (1-rate)*FPR)."""
    labels = np.array([1] * 100 + [0] * 100)
    probabilities = np.array([0.99] * 80 + [0.01] * 20 + [0.99] * 10 + [0.01] * 90)
    point = evaluation.at_rate(probabilities, labels, base_rate=0.5, rate=0.05, miss_cost=5)
    assert (point.tpr, point.fpr) == (0.8, 0.1)
    assert point.precision == pytest.approx(0.05 * 0.8 / (0.05 * 0.8 + 0.95 * 0.1))
    assert training.prf(labels, probabilities >= 0.5)[0] == pytest.approx(80 / 90)


def test_the_operating_point_moves_with_the_rate_and_the_cost() -> None:
    """At the training rate and equal costs the point is 0.5; a rarer complaint asks for more
    certainty, a dearer miss for less."""
    labels = np.array([0, 1])
    probabilities = np.array([0.2, 0.8])
    assert evaluation.at_rate(probabilities, labels, 0.5, 0.5, 1).threshold == pytest.approx(0.5)
    rare = evaluation.at_rate(probabilities, labels, 0.5, 0.05, 1).threshold
    dear = evaluation.at_rate(probabilities, labels, 0.5, 0.05, 5).threshold
    assert 0.5 < dear < rare
    assert evaluation.shifted(np.array([0.5]), 0.5, 0.05)[0] == pytest.approx(0.05)


def test_calibration_error_of_calibrated_and_overconfident_probabilities() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(size=20000)
    labels = (rng.uniform(size=20000) < probabilities).astype(np.int64)
    assert evaluation.expected_calibration_error(probabilities, labels) < 0.02
    overconfident = np.where(probabilities > 0.5, 0.99, 0.01)
    assert evaluation.expected_calibration_error(overconfident, labels) > 0.2
    assert evaluation.brier(overconfident, labels) > evaluation.brier(probabilities, labels)


def test_the_best_threshold_f1_bounds_every_threshold_and_flags_equal_scores_together() -> None:
    """A perfect ranking could reach 1.0; texts of one score cannot be split by a threshold, so
    a tie of a complaint and a non-complaint costs what flagging both costs."""
    labels = np.array([1, 1, 0, 0])
    assert evaluation.best_f1(np.array([0.9, 0.8, 0.7, 0.1]), labels) == 1.0
    assert evaluation.best_f1(np.array([0.9, 0.5, 0.5, 0.1]), labels) == pytest.approx(0.8)
    rng = np.random.default_rng(1)
    scores, labels = rng.uniform(size=300).round(2), rng.integers(0, 2, size=300)
    every = [training.prf(labels, scores >= t)[2] for t in np.unique(scores)]
    assert evaluation.best_f1(scores, labels) == pytest.approx(max(every))
    assert evaluation.best_f1(scores, np.zeros(300, dtype=np.int64)) == 0.0


def test_indirect_complaints_say_nothing_overtly_negative() -> None:
    texts = [
        "还行吧，也就那样",
        "送得太慢了，难吃",
        "I'd expected more from you",
        "This is awful",
        "ok",
    ]
    labels = np.array([1, 1, 1, 1, 0])
    languages = ["zh", "zh", "en", "en", "en"]
    found = [
        bool(evaluation.indirect([t], np.array([y]), language)[0])
        for t, y, language in zip(texts, labels, languages, strict=True)
    ]
    assert found == [True, False, True, False, False]  # a non-complaint is never in the subset


def test_cleaning_strips_marks_and_drops_duplicates_and_contradictions() -> None:
    labelled = training.Labelled(
        ["\ufeff好评", "好评", " 差评 ", "差评", "一般", "一般"],
        np.array([0, 0, 1, 1, 1, 0]),
        ["a", "a", "b", "b", "b", "b"],
    )
    cleaned = training.clean(labelled)
    assert cleaned.texts == ["好评", "差评"]  # "一般" said both ways: dropped
    assert cleaned.labels.tolist() == [0, 1]


def test_balanced_takes_at_most_so_many_of_each_label_of_each_kind() -> None:
    texts = [f"t{i}" for i in range(30)]
    labels = np.array([1] * 20 + [0] * 10)
    kinds = ["big"] * 25 + ["small"] * 5
    labelled = training.Labelled(texts, labels, kinds)
    chosen = training.balanced(labelled, 4)
    counts = {
        (kinds[i], int(labels[i])): sum(
            1 for j in chosen if kinds[j] == kinds[i] and labels[j] == labels[i]
        )
        for i in chosen
    }
    assert counts == {("big", 1): 4, ("big", 0): 4, ("small", 0): 4}
    assert training.balanced(labelled, 4, ["small"]).tolist() == sorted(
        training.balanced(labelled, 4, ["small"]).tolist()
    )
    shuffled = training.Labelled(texts[::-1], labels[::-1], kinds[::-1])
    assert sorted(texts[i] for i in chosen) == sorted(
        shuffled.texts[i] for i in training.balanced(shuffled, 4)
    )  # a sample does not depend on the file's order


def test_weighted_training_takes_every_text_and_weighs_each_kind_and_label_alike() -> None:
    """A kind's 2 complaints weigh as much as another's 18; a text of no kind (a call
    utterance) weighs one text; the weights average 1."""
    labels = np.array([1] * 18 + [0] * 10 + [1] * 2 + [0] * 10 + [1])
    kinds = ["big"] * 28 + ["small"] * 12 + [""]
    labelled = training.Labelled([f"t{i}" for i in range(len(kinds))], labels, kinds)
    spec = training.DomainsConfig("more.csv", "cat", "main", per_label=5, weighted=True)
    assert training.training_index(labelled, spec).tolist() == list(range(len(kinds)))
    assert training.training_index(labelled, spec, ["small"]).tolist() == list(range(28, 40))
    weights = training.domain_weights(kinds, labels, per_label=5)
    assert weights.mean() == pytest.approx(1.0)
    groups = [(k, int(y)) for k, y in zip(kinds, labels, strict=True)]
    totals = {g: weights[[i for i, h in enumerate(groups) if h == g]].sum() for g in set(groups)}
    kind_totals = [totals[g] for g in groups if g[0]]
    assert max(kind_totals) == pytest.approx(min(kind_totals))  # each kind and label alike
    assert totals[("", 1)] == pytest.approx(kind_totals[0] / 5)  # one text's weight
    unweighted = training.DomainsConfig("more.csv", "cat", "main", per_label=5)
    assert len(training.training_index(labelled, unweighted)) == 5 + 5 + 2 + 5 + 1


def test_platt_scaling_undoes_a_pushed_base_rate() -> None:
    """Logits of a model whose probabilities say 50 % where 20 % are complaints: calibrated,
    their mean is the base rate and the calibration records it."""
    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=5000) < 0.2).astype(np.int64)
    logits = rng.normal(size=5000) + np.where(labels == 1, 1.5, -0.5)
    calibration = training.platt(logits, labels)
    assert calibration.base_rate == pytest.approx(labels.mean(), abs=1e-6)
    assert training.calibrated(calibration, logits).mean() == pytest.approx(labels.mean(), abs=0.01)
    assert training.sigmoid(logits).mean() > 0.35


def test_nested_cross_validation_gives_every_text_a_calibrated_held_out_probability() -> None:
    """Each text is scored by an outer model that never saw it, through the calibration its
    own inner cross-validation fitted: on average they say the complaint share."""
    root = data_root()
    spec = training.load_training_config(root).languages["en"]
    texts, labels = training.read_labelled(
        (root / spec.data).read_bytes(), spec.data, "text", "label", "1"
    )
    corpus = training.featurize(
        texts[::4],
        labels[::4],
        "en",
        TextFeatures(load_lexicon(root)),
        load_weights(root),
        strip_punctuation=spec.strip_punctuation,
    )
    result = training.nested_cv(corpus, spec, 3, 3, 0)
    assert result.base_rate == pytest.approx(labels[::4].mean())
    assert result.calibrated.mean() == pytest.approx(result.base_rate, abs=0.05)
    raw = training.sigmoid(result.logits).mean()  # class-balanced: pulled towards 0.5
    assert abs(raw - result.base_rate) > abs(result.calibrated.mean() - result.base_rate) + 0.03
    assert evaluation.brier(result.calibrated, labels[::4]) < 0.2


def test_weighted_training_weighs_a_small_kind_up_and_needs_each_texts_kind() -> None:
    """Trained weighted, a kind's few complaints pull the model as far as another's many: a
    word only the small kind's complaints use gets more weight than when every text counts
    once. Texts featurized without their kinds are refused with a clear error."""
    root = data_root()
    spec = training.load_training_config(root).languages["zh"]
    assert spec.domains is not None
    texts = ["东西很好", "非常满意", "质量不错"] * 10 + ["太差了"] * 30 + ["漏水"] * 3
    texts += ["很好用", "满意"] * 10
    labels = np.array([0] * 30 + [1] * 30 + [1] * 3 + [0] * 20)
    kinds = ["big"] * 60 + ["small"] * 23
    features = TextFeatures(load_lexicon(root))

    def corpus(with_kinds: bool) -> training.Corpus:
        return training.featurize(
            texts,
            labels,
            "zh",
            features,
            load_weights(root),
            strip_punctuation=True,
            domains=kinds if with_kinds else (),
        )

    index = np.arange(len(texts))
    weighted = replace(spec, domains=replace(spec.domains, weighted=True))
    sampled = replace(spec, domains=replace(spec.domains, weighted=False))
    leak = corpus(True)
    leaks = leak.texts.index("漏水")
    up = training.fit(leak, index, weighted, 0).logits(leak, np.array([leaks]))[0]
    once = training.fit(leak, index, sampled, 0).logits(leak, np.array([leaks]))[0]
    assert up > once
    with pytest.raises(ValueError, match="each text's domain"):
        training.fit(corpus(False), index, weighted, 0)
