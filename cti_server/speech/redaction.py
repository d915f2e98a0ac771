"""Transcript segments redacted before anything stores or shows them: the text and the words
(with their times) that carried a card number, a card code, an ID number, a phone or an e-mail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cti_server.speech.decoder import Segment
from cti_server.transcription.redact import masked_words, redact

MASKED_WORD = "[REDACTED]"


def redact_segment(segment: Segment, regions: Sequence[str] = ("CN", "US", "GB")) -> Segment:
    found = redact(segment.text, regions)
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
