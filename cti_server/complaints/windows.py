"""A call's customer words as the text model reads them, kept up to date as lines come.

Each customer line is cut into parts of bounded length (:func:`.text.parts`; a normal utterance
is one part) and each part is analysed once (:meth:`.features.TextFeatures.part`). The model
reads windows of ``width`` consecutive parts; each window is scored once, as its last part comes,
from the text of its parts (tf-idf: a window's is not the sum of its parts', so it is computed
over the window's text, which is bounded) and the features its parts found. A call of n parts
costs n analyses and about n window scores, whether it is scored at once or after every line.

The call's text logit is its best window's, like this: with fewer parts than ``width``, the one
window of them all; else the highest of the full windows.

A model that reads sentence embeddings (tens of ms a window, a hundred times the rest) is
given a ``ranker``, the linear model: it scores every full window, and only the ``embedded``
windows it ranks highest are scored by the embedding model, when the best is asked for (each
once, while it stays among them); the best is the highest of those. A call of fewer windows is
scored exactly as before, and a long one costs the linear model's time plus a bounded number of
embeddings at once, or about ``embedded`` x (1 + ln(windows / embedded)) when asked after every
line as the live watch does. On mixed calls the ranker's top 4 held the embedding model's best
window in 97-98 % of calls and came within 0.11 logit of it in the others.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass, field

from cti_server.complaints.features import Part, TextFeatures
from cti_server.complaints.model import TextModel
from cti_server.complaints.signals import TranscriptLine
from cti_server.complaints.text import parts, prepare

EMBEDDED_WINDOWS = 4  # of a call, the most a ranker lets the embedding model score


@dataclass(frozen=True, slots=True)
class Unit:
    """One part of a customer's line: the line, where the part starts in its text, the part."""

    index: int  # of the line in the caller's transcript
    segment: TranscriptLine
    offset: int
    text: str
    part: Part

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Characters of the line's text from a span of the part's normalized text."""
        first, last = self.part.normalized.original_span(start, end)
        return self.offset + first, self.offset + last


@dataclass(frozen=True, slots=True)
class Window:
    logit: float  # the text model's, without the cue priors
    units: tuple[Unit, ...]
    terms: tuple[tuple[str, float], ...]  # readable terms and their contributions, largest first


@dataclass(slots=True)
class _Candidate:
    """A full window as the ranker scored it; the model's score once asked for."""

    key: tuple[float, int]  # sorts the ranker's highest first, the earliest among equals
    units: tuple[Unit, ...]
    scored: Window | None = None

    def __lt__(self, other: _Candidate) -> bool:
        return self.key < other.key


@dataclass
class CallText:
    """One call's customer lines in one language, analysed as they come."""

    features: TextFeatures
    model: TextModel
    width: int
    language: str
    units: list[Unit] = field(default_factory=list)
    groups: set[str] = field(default_factory=set)  # cue groups found so far
    lines: int = 0  # customer lines read
    ranker: TextModel | None = None  # ranks the windows of a model that reads embeddings
    embedded: int = EMBEDDED_WINDOWS
    _best: Window | None = None  # of the full windows
    _first: Window | None = None  # of all the parts, while fewer than a full window
    _top: list[_Candidate] = field(default_factory=list)  # the ranker's best full windows
    _windows: int = 0  # full windows so far

    def add(self, index: int, segment: TranscriptLine) -> None:
        """The next customer line (with text), ``index`` its place in the transcript."""
        self.lines += 1
        for offset, text in parts(segment.text):
            part = self.features.part(text, self.language)
            self.units.append(Unit(index, segment, offset, text, part))
            self.groups.update(m.group for m in part.matches)
            if len(self.units) < self.width:
                self._first = None  # scored when asked for: often never, once a window is full
            elif self.ranker is not None:
                self._rank(tuple(self.units[-self.width :]))
            else:
                window = self._score(self.units[-self.width :])
                if self._best is None or window.logit > self._best.logit:
                    self._best = window

    def _rank(self, units: tuple[Unit, ...]) -> None:
        assert self.ranker is not None
        text, dense = self._input(units)
        rank = self.ranker.score(text, dense, embedded=False).logit
        self._windows += 1
        insort(self._top, _Candidate((-rank, self._windows), units))
        del self._top[self.embedded :]

    @property
    def best(self) -> Window:
        if self._top:
            for candidate in self._top:
                if candidate.scored is None:
                    candidate.scored = self._score(candidate.units)
            scored = [c.scored for c in self._top if c.scored is not None]
            return max(scored, key=lambda w: w.logit)  # the first (highest ranked) among equals
        if self._best is not None:
            return self._best
        if self.units:
            if self._first is None:
                self._first = self._score(self.units)
            return self._first
        return self._score([])  # nothing said: what the model makes of an empty turn to us

    def _input(self, units: Sequence[Unit]) -> tuple[str, dict[str, float]]:
        """A window's text and features as the models read them."""
        prepared = prepare(" ".join(u.text for u in units), addressed=True)
        dense = self.features.combine([u.part for u in units], self.language, addressed=True)
        return prepared.text, dense

    def _score(self, units: Sequence[Unit]) -> Window:
        scored = self.model.score(*self._input(units))
        return Window(scored.logit, tuple(units), scored.word_terms)
