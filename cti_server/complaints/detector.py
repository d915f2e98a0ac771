"""The complaint detector: a customer's segments and the call's facts → a complaint signal.

Three sources add up on the logit scale, each with its own evidence:
1. the trained text model (:mod:`.model`), over windows of consecutive customer segments; the
   call's text logit is its best window's (a complaint is said somewhere, not everywhere;
   :mod:`.windows`);
2. the priors of cue groups that written training data cannot teach (calling again, giving up;
   ``cues.yaml``), once per group, capped;
3. call facts (repeat call within 7 days, hold, transfers back and forth, survey, abandon;
   ``weights.yaml``).
The text logit with the cue priors is calibrated as the model file says (Platt scaling fitted in
training; a probability at the training data's complaint share), the facts are added, and the
sum is moved to the complaint rate the manager expects (:mod:`.operating_point`); the call is a
complaint when that probability reaches the threshold the costs of a miss and a false alarm set.

Pure and synchronous: callers run it where they like. :meth:`ComplaintDetector.call` keeps one
call's score up to date as its lines come, analysing each once (the live watch); :meth:`detect`
scores a whole transcript the same way.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property

from cti_server.complaints.embeddings import available as embeddings_available
from cti_server.complaints.features import CueMatch, TextFeatures
from cti_server.complaints.model import TextModel
from cti_server.complaints.operating_point import OperatingPoint, sigmoid
from cti_server.complaints.resources import (
    LANGUAGES,
    Calibration,
    DataRoot,
    Lexicon,
    ModelData,
    Weights,
    data_root,
    has_model,
    load_categories,
    load_lexicon,
    load_model,
    load_weights,
)
from cti_server.complaints.signals import (
    CATEGORIES,
    SEVERITIES,
    CallFacts,
    Category,
    ComplaintSignal,
    Evidence,
    Severity,
    TranscriptLine,
)
from cti_server.complaints.text import Script, language_of, prepare
from cti_server.complaints.windows import CallText, Unit


class ComplaintDetector:
    """Loads its data files on first use (or :meth:`load`), then detects without I/O.

    ``embeddings``: use a language's embedding model (``model_<language>_e5.json.gz``) when the
    ``embeddings`` extra is installed (``None``), always (``True``, raising if it cannot), or
    never (``False``, the default): the linear model alone. The embedding model
    is opt-in: better on written messages (README), but it misses some spoken disappointment
    ("well I'd expected better from you") that the linear model catches.
    ``operating_point``: the complaint rate the manager expects and the costs of a miss and a
    false alarm, which set what probability a call has and from which one it is flagged.
    """

    def __init__(
        self,
        root: DataRoot | None = None,
        *,
        embeddings: bool | None = False,
        operating_point: OperatingPoint | None = None,
    ) -> None:
        self._root = root
        self._embeddings = embeddings
        self.operating_point = operating_point or OperatingPoint()

    def load(self) -> None:
        """Read and check every data file now (at start-up), raising ComplaintDataError."""
        _ = self._features, self._weights, self._categories, self._rankers
        for model in self._models.values():
            model.load()

    @cached_property
    def _data(self) -> DataRoot:
        return self._root if self._root is not None else data_root()

    @cached_property
    def _lexicon(self) -> Lexicon:
        return load_lexicon(self._data)

    @cached_property
    def _features(self) -> TextFeatures:
        return TextFeatures(self._lexicon)

    @cached_property
    def _weights(self) -> Weights:
        return load_weights(self._data)

    @cached_property
    def _categories(self) -> dict[Category, dict[str, re.Pattern[str]]]:
        return load_categories(self._data)

    @cached_property
    def _models(self) -> dict[str, TextModel]:
        return {language: TextModel(self._model_data(language)) for language in LANGUAGES}

    @cached_property
    def _rankers(self) -> dict[str, TextModel]:
        """The linear model of each language whose model reads embeddings: it ranks a call's
        windows so that only the few best are embedded (:mod:`.windows`)."""
        return {
            language: TextModel(load_model(self._data, language))
            for language, model in self._models.items()
            if model.reads_embeddings
        }

    def _model_data(self, language: str) -> ModelData:
        if self._embeddings is False or not has_model(self._data, language, embeddings=True):
            return load_model(self._data, language)
        data = load_model(self._data, language, embeddings=True)
        package = data.embedding.package if data.embedding is not None else ""
        if self._embeddings is None and not embeddings_available(package):
            return load_model(self._data, language)
        return data

    def uses_embeddings(self, language: str) -> bool:
        return self._models[language].data.embedding is not None

    def threshold(self, language: str) -> float:
        """The threshold the language's model was trained with, for :meth:`text_probability`;
        calls are flagged at the operating point's (``ComplaintSignal.threshold``)."""
        return self._models[language].threshold

    def calibration(self, language: str) -> Calibration:
        return self._models[language].data.calibration

    @property
    def parts_analysed(self) -> int:
        """Parts of text analysed so far (each customer utterance once; a long one in parts)."""
        return self._features.parts_analysed

    # -- one written text (evaluation) ------------------------------------------------------

    def text_probability(self, text: str, language: str | None = None) -> float:
        """Probability for one written message, as the model was trained and evaluated on."""
        language = language or language_of(text)
        prepared = prepare(text)
        dense, matches = self._features.dense(prepared, language)
        logit = self._models[language].score(prepared.text, dense).logit
        return sigmoid(logit + self._features.prior(matches, self._weights.max_prior))

    # -- a call -------------------------------------------------------------------------------

    def call(self) -> CallScore:
        """One call's score, kept up to date as its lines are added."""
        return CallScore(self)

    def detect(
        self,
        segments: Sequence[TranscriptLine],
        facts: CallFacts | None = None,
        language: str | None = None,
    ) -> ComplaintSignal:
        call = self.call()
        call.add(segments)
        return call.signal(facts, language)

    def _call_text(self, language: str) -> CallText:
        return CallText(
            self._features,
            self._models[language],
            self._weights.window_segments,
            language,
            ranker=self._rankers.get(language),
        )

    def _logit(self, text: CallText, fact_logit: float) -> float:
        """The call's logit at the operating point: the text's (best window and cue priors),
        calibrated, with the facts', moved to the expected complaint rate."""
        calibration = text.model.data.calibration
        raw = text.best.logit + self._features.prior_of(text.groups, self._weights.max_prior)
        calibrated = calibration.slope * raw + calibration.intercept
        return calibrated + fact_logit + self.operating_point.shift(calibration.base_rate)

    def _signal(self, text: CallText, facts: CallFacts) -> ComplaintSignal:
        fact_logit, fact_evidence = self._facts(facts)
        probability = sigmoid(self._logit(text, fact_logit))
        threshold = self.operating_point.threshold
        model = text.model
        evidence: list[Evidence] = []
        all_matches = [m for u in text.units for m in u.part.matches]
        for unit in text.units:
            for match in unit.part.matches:
                group = self._lexicon.groups[match.group]
                weight = group.prior + model.data.dense.get(f"cue_{match.group}", 0.0) * math.log(2)
                if weight > 0:
                    evidence.append(
                        _span_evidence(
                            "cue",
                            f"{match.group}: {match.text}",
                            weight,
                            unit,
                            start=match.start,
                            end=match.end,
                        )
                    )
        best = text.best
        evidence.extend(self._term_evidence(best.units, best.terms, evidence))
        evidence.extend(fact_evidence)
        evidence.sort(key=lambda e: (e.segment is None, e.segment or 0, e.char_start, -e.weight))
        return ComplaintSignal(
            probability=probability,
            threshold=threshold,
            category=self._category(text.units, evidence, fact_evidence, text.language),
            severity=self._severity(probability, threshold, all_matches, facts),
            language=text.language,
            evidence=tuple(evidence),
        )

    # -- parts ---------------------------------------------------------------------------------

    def _term_evidence(
        self, window: Sequence[Unit], terms: tuple[tuple[str, float], ...], cues: list[Evidence]
    ) -> list[Evidence]:
        """The model's strongest readable terms, located in the window's segments."""
        found: list[Evidence] = []
        for term, weight in terms:
            if len(found) >= self._weights.model_terms or weight < self._weights.min_model_weight:
                break
            if all(word in self._weights.skip_terms for word in term.split()):
                continue
            pattern = re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, term.split())) + r"(?!\w)")
            for unit in window:
                m = pattern.search(unit.part.normalized.text)
                if m is None:
                    continue
                at = unit.span(m.start(), m.end())[0]
                if not any(
                    c.segment == unit.index and c.char_start <= at < c.char_end for c in cues
                ):
                    found.append(
                        _span_evidence("model", term, weight, unit, start=m.start(), end=m.end())
                    )
                break
        return found

    def _facts(self, facts: CallFacts) -> tuple[float, list[Evidence]]:
        w = self._weights
        parts: list[tuple[str, float]] = []
        if facts.repeat_call_same_topic_7d:
            parts.append(("repeat_call_same_topic_7d", w.repeat_call))
        if facts.hold_seconds:
            parts.append((f"hold_seconds={facts.hold_seconds:g}", w.hold(facts.hold_seconds)))
        if facts.queue_wait_seconds:
            seconds = facts.queue_wait_seconds
            parts.append((f"queue_wait_seconds={seconds:g}", w.queue_wait(seconds)))
        if facts.transfers_back_and_forth:
            value = min(w.transfer_max, w.transfer_each * facts.transfers_back_and_forth)
            parts.append((f"transfers_back_and_forth={facts.transfers_back_and_forth}", value))
        if facts.survey_score is not None:
            parts.append(
                (f"survey_score={facts.survey_score}", w.survey.get(facts.survey_score, 0.0))
            )
        if facts.abandoned_after_wait_seconds is not None:
            seconds = facts.abandoned_after_wait_seconds
            parts.append((f"abandoned_after_wait_seconds={seconds:g}", w.abandoned(seconds)))
        parts = [(name, value) for name, value in parts if value != 0.0]
        return sum(v for _, v in parts), [Evidence("fact", name, value) for name, value in parts]

    def _category(
        self, units: Sequence[Unit], evidence: list[Evidence], facts: list[Evidence], language: str
    ) -> Category:
        with_evidence = {e.segment for e in evidence if e.segment is not None}
        votes: Counter[Category] = Counter()
        for unit in units:
            factor = 3 if unit.index in with_evidence else 1
            text = unit.part.normalized.text
            for category, patterns in self._categories.items():
                votes[category] += factor * len(patterns[language].findall(text))
            for match in unit.part.matches:
                hinted = self._lexicon.groups[match.group].category
                if hinted is not None:
                    votes[hinted] += 1
        service_facts = [f for f in facts if not f.cue.startswith("survey_score") and f.weight > 0]
        votes[self._weights.facts_category] += len(service_facts)
        if not votes or max(votes.values()) == 0:
            return "other"
        top = max(votes.values())
        return next(c for c in CATEGORIES if votes[c] == top)

    def _severity(
        self, probability: float, threshold: float, matches: list[CueMatch], facts: CallFacts
    ) -> Severity:
        w = self._weights
        if probability < threshold:
            return "low"
        level = 1
        if probability >= w.high:
            level = 2
        if probability >= w.critical:
            level = 3
        if facts.repeat_call_same_topic_7d or (
            facts.survey_score is not None and facts.survey_score <= w.survey_high
        ):
            level = max(level, 2)
        for match in matches:
            floor = self._lexicon.groups[match.group].severity
            if floor is not None:
                level = max(level, SEVERITIES.index(floor))
        return SEVERITIES[level]


def _span_evidence(
    kind: str, cue: str, weight: float, unit: Unit, *, start: int, end: int
) -> Evidence:
    char_start, char_end = unit.span(start, end)
    t0, t1 = _times(unit.segment, char_start, char_end)
    return Evidence(
        kind="cue" if kind == "cue" else "model",
        cue=cue,
        weight=round(weight, 3),
        segment=unit.index,
        char_start=char_start,
        char_end=char_end,
        start=t0,
        end=t1,
        text=unit.segment.text[char_start:char_end],
    )


def _times(segment: TranscriptLine, char_start: int, char_end: int) -> tuple[float, float]:
    """Seconds of a character span: from the words' times when the words spell the text
    (as recognisers give them), else interpolated along the segment."""
    words = segment.words
    if words and " ".join(w.text for w in words) == segment.text:
        position = 0
        first: float | None = None
        last: float | None = None
        for word in words:
            word_end = position + len(word.text)
            if word_end > char_start and position < char_end:
                first = word.start if first is None else first
                last = word.end
            position = word_end + 1
        if first is not None and last is not None:
            return first, last
    length = max(1, len(segment.text))
    duration = max(0.0, segment.end - segment.start)
    return (
        round(segment.start + duration * char_start / length, 3),
        round(segment.start + duration * char_end / length, 3),
    )


class CallScore:
    """One call's complaint score as its transcript grows: :meth:`add` the lines as they come
    (any speaker; only the customer's are read), ask :meth:`is_complaint` after each (cheap:
    each line is analysed once, each window scored once) and :meth:`signal` for the finding
    with its evidence and category (which reads the whole call again).

    The language is decided on all the customer's words so far, as :func:`.text.language_of`
    would; a language not decided before is analysed from the first line when first asked
    for. Not thread-safe: one caller at a time.
    """

    def __init__(self, detector: ComplaintDetector) -> None:
        self._detector = detector
        self._lines: list[tuple[int, TranscriptLine]] = []  # the customer's, with their index
        self._added = 0
        self._script = Script()
        self._texts: dict[str, CallText] = {}

    def add(self, segments: Iterable[TranscriptLine]) -> None:
        for segment in segments:
            if segment.speaker == "customer" and segment.text.strip():
                self._lines.append((self._added, segment))
                self._script += Script.of(segment.text)
            self._added += 1

    @property
    def language(self) -> str:
        return self._script.language if self._lines else "en"

    def probability(self, facts: CallFacts | None = None, language: str | None = None) -> float:
        """The probability the signal would say, without its evidence."""
        fact_logit, _ = self._detector._facts(facts or CallFacts())
        return sigmoid(self._detector._logit(self._text(language), fact_logit))

    def is_complaint(self, facts: CallFacts | None = None, language: str | None = None) -> bool:
        return self.probability(facts, language) >= self._detector.operating_point.threshold

    def signal(
        self, facts: CallFacts | None = None, language: str | None = None
    ) -> ComplaintSignal:
        return self._detector._signal(self._text(language), facts or CallFacts())

    def _text(self, language: str | None) -> CallText:
        language = language or self.language
        text = self._texts.get(language)
        if text is None:
            text = self._texts[language] = self._detector._call_text(language)
        for index, segment in self._lines[text.lines :]:
            text.add(index, segment)
        return text
