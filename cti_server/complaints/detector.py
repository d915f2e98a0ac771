"""The complaint detector: a customer's segments and the call's facts → a complaint signal.

Three sources add up on the logit scale, each with its own evidence:
1. the trained text model (:mod:`.model`), over windows of consecutive customer segments; the
   call's text logit is its best window's (a complaint is said somewhere, not everywhere);
2. the priors of cue groups that written training data cannot teach (calling again, giving up;
   ``cues.yaml``), once per group, capped;
3. call facts (repeat call within 7 days, hold, transfers back and forth, survey, abandon;
   ``weights.yaml``).
The probability is the logistic of the sum; the threshold is the model's, chosen by
cross-validation when it was trained. Pure and synchronous: callers run it where they like.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from cti_server.complaints.embeddings import available as embeddings_available
from cti_server.complaints.features import CueMatch, TextFeatures
from cti_server.complaints.model import TextModel
from cti_server.complaints.resources import (
    LANGUAGES,
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
from cti_server.complaints.text import Normalized, language_of, normalize, prepare


@dataclass(frozen=True, slots=True)
class _Scored:
    index: int  # in the caller's segment list
    segment: TranscriptLine
    normalized: Normalized
    matches: list[CueMatch]


class ComplaintDetector:
    """Loads its data files on first use (or :meth:`load`), then detects without I/O.

    ``embeddings``: use a language's embedding model (``model_<language>_e5.json.gz``) when the
    ``embeddings`` extra is installed (``None``), always (``True``, raising if it cannot), or
    never (``False``, the default): the linear model with its own threshold. The embedding model
    is opt-in: better on written messages (README), but it misses some spoken disappointment
    ("well I'd expected better from you") that the linear model catches.
    """

    def __init__(self, root: DataRoot | None = None, *, embeddings: bool | None = False) -> None:
        self._root = root
        self._embeddings = embeddings

    def load(self) -> None:
        """Read and check every data file now (at start-up), raising ComplaintDataError."""
        _ = self._features, self._weights, self._categories, self._models

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
        return self._models[language].threshold

    # -- one written text (evaluation) ------------------------------------------------------

    def text_probability(self, text: str, language: str | None = None) -> float:
        """Probability for one written message, as the model was trained and evaluated on."""
        language = language or language_of(text)
        prepared = prepare(text)
        dense, matches = self._features.dense(prepared, language)
        logit = self._models[language].score(prepared.text, dense).logit
        return _sigmoid(logit + self._features.prior(matches, self._weights.max_prior))

    # -- a call -------------------------------------------------------------------------------

    def detect(
        self,
        segments: Sequence[TranscriptLine],
        facts: CallFacts | None = None,
        language: str | None = None,
    ) -> ComplaintSignal:
        facts = facts or CallFacts()
        customer = [
            (i, s) for i, s in enumerate(segments) if s.speaker == "customer" and s.text.strip()
        ]
        if language is None:
            language = language_of(" ".join(s.text for _, s in customer)) if customer else "en"
        model = self._models[language]
        scored = []
        for index, segment in customer:
            normalized = normalize(segment.text)
            scored.append(
                _Scored(
                    index, segment, normalized, self._features.cue_matches(normalized, language)
                )
            )

        evidence: list[Evidence] = []
        text_logit = -math.inf
        if not scored:  # nothing said: what the model makes of an empty turn to us
            empty = prepare("", addressed=True)
            text_logit = model.score("", self._features.dense(empty, language)[0]).logit
        best: list[_Scored] = []
        best_terms: tuple[tuple[str, float], ...] = ()
        width = self._weights.window_segments
        for start in range(max(1, len(scored) - width + 1) if scored else 0):
            window = scored[start : start + width]
            prepared = prepare(" ".join(s.segment.text for s in window), addressed=True)
            result = model.score(prepared.text, self._features.dense(prepared, language)[0])
            if result.logit > text_logit:
                text_logit, best, best_terms = result.logit, window, result.word_terms

        all_matches = [m for s in scored for m in s.matches]
        prior = self._features.prior(all_matches, self._weights.max_prior)
        for s in scored:
            for match in s.matches:
                group = self._lexicon.groups[match.group]
                weight = group.prior + model.data.dense.get(f"cue_{match.group}", 0.0) * math.log(2)
                if weight > 0:
                    evidence.append(
                        _span_evidence(
                            "cue",
                            f"{match.group}: {match.text}",
                            weight,
                            s,
                            start=match.start,
                            end=match.end,
                        )
                    )
        evidence.extend(self._term_evidence(best, best_terms, evidence))
        fact_logit, fact_evidence = self._facts(facts)
        evidence.extend(fact_evidence)

        probability = _sigmoid(text_logit + prior + fact_logit)
        threshold = model.threshold
        evidence.sort(key=lambda e: (e.segment is None, e.segment or 0, e.char_start, -e.weight))
        return ComplaintSignal(
            probability=probability,
            threshold=threshold,
            category=self._category(scored, evidence, fact_evidence, language),
            severity=self._severity(probability, threshold, all_matches, facts),
            language=language,
            evidence=tuple(evidence),
        )

    # -- parts ---------------------------------------------------------------------------------

    def _term_evidence(
        self, window: list[_Scored], terms: tuple[tuple[str, float], ...], cues: list[Evidence]
    ) -> list[Evidence]:
        """The model's strongest readable terms, located in the window's segments."""
        found: list[Evidence] = []
        for term, weight in terms:
            if len(found) >= self._weights.model_terms or weight < self._weights.min_model_weight:
                break
            if all(word in self._weights.skip_terms for word in term.split()):
                continue
            pattern = re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, term.split())) + r"(?!\w)")
            for s in window:
                m = pattern.search(s.normalized.text)
                if m is None:
                    continue
                if not any(
                    c.segment == s.index
                    and c.char_start
                    <= s.normalized.original_span(m.start(), m.end())[0]
                    < c.char_end
                    for c in cues
                ):
                    found.append(
                        _span_evidence("model", term, weight, s, start=m.start(), end=m.end())
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
        self, scored: list[_Scored], evidence: list[Evidence], facts: list[Evidence], language: str
    ) -> Category:
        with_evidence = {e.segment for e in evidence if e.segment is not None}
        votes: Counter[Category] = Counter()
        for s in scored:
            factor = 3 if s.index in with_evidence else 1
            for category, patterns in self._categories.items():
                votes[category] += factor * len(patterns[language].findall(s.normalized.text))
            for match in s.matches:
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
    kind: str, cue: str, weight: float, s: _Scored, *, start: int, end: int
) -> Evidence:
    char_start, char_end = s.normalized.original_span(start, end)
    t0, t1 = _times(s.segment, char_start, char_end)
    return Evidence(
        kind="cue" if kind == "cue" else "model",
        cue=cue,
        weight=round(weight, 3),
        segment=s.index,
        char_start=char_start,
        char_end=char_end,
        start=t0,
        end=t1,
        text=s.segment.text[char_start:char_end],
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


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
