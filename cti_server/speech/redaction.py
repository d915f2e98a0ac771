"""Transcript segments redacted before anything stores or shows them: the text and the words
(with their times) that carried a card number, a card code, an ID number, a phone or an e-mail.

A call is redacted whole (:func:`redact_segments`, both speakers in time order) so that a code
answering the agent's question or a card read in two breaths is caught; live text goes through
a :class:`LiveRedactor`, which sees the call's last few utterances and holds back the digits an
utterance ends with, since they may be the start of a card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cti_server.events import Utterance
from cti_server.speech.decoder import RecognisedUtterance
from cti_server.speech.text_redaction import (
    REGIONS,
    Redacted,
    masked_words,
    redact_sequence,
)

MASKED_WORD = "[REDACTED]"
LIVE_CONTEXT = 8  # utterances a live one is redacted with (card talk and joins reach 4 back)


def redact_segments(
    segments: Sequence[RecognisedUtterance], regions: Sequence[str] = REGIONS
) -> list[RecognisedUtterance]:
    """A call's segments, redacted together; give them in time order."""
    results = redact_sequence([_utterance(s) for s in segments], regions)
    return [_masked(s, r) for s, r in zip(segments, results, strict=True)]


def redact_segment(
    segment: RecognisedUtterance, regions: Sequence[str] = REGIONS
) -> RecognisedUtterance:
    """One segment on its own (no context from the rest of its call)."""
    return redact_segments([segment], regions)[0]


class LiveRedactor:
    """One call's live text, redacted in the context of what was said just before it."""

    def __init__(self, regions: Sequence[str] = REGIONS) -> None:
        self._regions = tuple(regions)
        self._said: list[Utterance] = []  # the last finished utterances, as spoken

    def final(self, segment: RecognisedUtterance) -> RecognisedUtterance:
        """A finished utterance, as the wallboard and the live complaint check may see it."""
        self._said = [*self._said[-(LIVE_CONTEXT - 1) :], _utterance(segment)]
        result = self._redact(self._said)
        return _masked(segment, result)

    def partial(self, speaker: str, text: str) -> str:
        """What ``speaker`` is saying now, not finished."""
        start = self._said[-1].end if self._said else 0.0
        return self._redact([*self._said, Utterance(text, speaker, start, start)]).text

    def _redact(self, utterances: list[Utterance]) -> Redacted:
        speakers = {u.speaker for u in utterances}
        return redact_sequence(utterances, self._regions, still_speaking=speakers)[-1]


def _utterance(segment: RecognisedUtterance) -> Utterance:
    return Utterance(segment.text, segment.speaker, segment.start, segment.end)


def _masked(segment: RecognisedUtterance, found: Redacted) -> RecognisedUtterance:
    if not found.redactions:
        return segment
    words = [str(w.get("word", "")) for w in segment.words]
    if " ".join(words) != segment.text:  # words that do not spell the text: keep none of them
        return replace(segment, text=found.text, words=[])
    masked = set(masked_words(words, found.redactions))
    return replace(
        segment,
        text=found.text,
        words=[
            {**word, "word": MASKED_WORD} if i in masked else word
            for i, word in enumerate(segment.words)
        ],
    )
