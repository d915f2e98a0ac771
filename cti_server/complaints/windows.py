"""A call's customer words as the text model reads them, kept up to date as lines come.

Each customer line is cut into parts of bounded length (:func:`.text.parts`; a normal utterance
is one part) and each part is analysed once (:meth:`.features.TextFeatures.part`). The model
reads windows of ``width`` consecutive parts; each window is scored once, as its last part comes,
from the text of its parts (tf-idf: a window's is not the sum of its parts', so it is computed
over the window's text, which is bounded) and the features its parts found. A call of n parts
costs n analyses and about n window scores, whether it is scored at once or after every line.

The call's text logit is its best window's, like this: with fewer parts than ``width``, the one
window of them all; else the highest of the full windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cti_server.complaints.features import Part, TextFeatures
from cti_server.complaints.model import TextModel
from cti_server.complaints.signals import TranscriptLine
from cti_server.complaints.text import parts, prepare


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
    _best: Window | None = None  # of the full windows
    _first: Window | None = None  # of the parts so far, while fewer than a full window

    def add(self, index: int, segment: TranscriptLine) -> None:
        """The next customer line (with text), ``index`` its place in the transcript."""
        self.lines += 1
        for offset, text in parts(segment.text):
            part = self.features.part(text, self.language)
            self.units.append(Unit(index, segment, offset, text, part))
            self.groups.update(m.group for m in part.matches)
            if len(self.units) < self.width:
                self._first = self._score(self.units)
            else:
                window = self._score(self.units[-self.width :])
                if self._best is None or window.logit > self._best.logit:
                    self._best = window

    @property
    def best(self) -> Window:
        if self._best is not None:
            return self._best
        if self._first is not None:
            return self._first
        return self._score([])  # nothing said: what the model makes of an empty turn to us

    def _score(self, units: list[Unit]) -> Window:
        prepared = prepare(" ".join(u.text for u in units), addressed=True)
        dense = self.features.combine([u.part for u in units], self.language, addressed=True)
        scored = self.model.score(prepared.text, dense)
        return Window(scored.logit, tuple(units), scored.word_terms)
