"""Stored and live transcript segments are redacted with their words (and their times), and in
the context of the call: the wallboard never shows a card being read, even half of one."""

from __future__ import annotations

from typing import Any

from cti_server.speech.decoder import RecognisedUtterance
from cti_server.speech.redaction import (
    MASKED_WORD,
    LiveRedactor,
    redact_segment,
    redact_segments,
)


def _segment(speaker: str, start: float, text: str) -> RecognisedUtterance:
    words: list[dict[str, Any]] = [
        {"word": w, "start": start + 0.4 * i, "end": start + 0.4 * i + 0.3, "confidence": 0.9}
        for i, w in enumerate(text.split())
    ]
    return RecognisedUtterance(speaker, start, words[-1]["end"], text, 0.9, words)


def test_a_segments_sensitive_words_are_masked_and_keep_their_times() -> None:
    segment = _segment(
        "customer", 2.0, "call me on one three eight one two three four five six seven eight thanks"
    )
    redacted = redact_segment(segment)
    assert redacted.text == "call me on [PHONE] thanks"
    assert [w["word"] for w in redacted.words] == [
        "call",
        "me",
        "on",
        *[MASKED_WORD] * 11,
        "thanks",
    ]
    assert [w["start"] for w in redacted.words] == [w["start"] for w in segment.words]
    assert redact_segment(_segment("customer", 0.0, "nothing to hide")) == _segment(
        "customer", 0.0, "nothing to hide"
    )


def test_words_that_do_not_spell_the_text_are_dropped_rather_than_leak() -> None:
    segment = RecognisedUtterance(
        "customer", 0.0, 1.0, "cvv is 123", 0.9, [{"word": "cvv is one two three", "start": 0.0}]
    )
    assert redact_segment(segment).text == "cvv is [CVV]"
    assert redact_segment(segment).words == []


def test_a_call_is_redacted_across_speakers_and_breaths() -> None:
    call = [
        _segment("agent", 0.0, "can i have the card number"),
        _segment("customer", 3.0, "four five three two zero one five one"),
        _segment("customer", 7.0, "one two eight three zero three six six"),
        _segment("agent", 11.0, "and the security code"),
        _segment("customer", 13.0, "seven three one"),
    ]
    texts = [s.text for s in redact_segments(call)]
    assert texts == [
        "can i have the card number",
        "[CARD]",
        "[CARD]",
        "and the security code",
        "[CVV]",
    ]
    assert {w["word"] for w in redact_segments(call)[1].words} == {MASKED_WORD}
    # one segment at a time, as before, the halves and the code leaked
    assert [redact_segment(s).text for s in call][1:] == [s.text for s in call][1:]


def test_live_text_never_shows_a_card_being_read() -> None:
    live = LiveRedactor()
    shown = [live.partial("customer", "hello it is four five three")]
    shown.append(
        live.final(
            _segment("customer", 0.0, "hello it is four five three two zero one five one")
        ).text
    )
    shown.append(live.partial("customer", "one two eight"))
    second = live.final(_segment("customer", 4.0, "one two eight three zero three six six"))
    assert shown == ["hello it is [...]", "hello it is [...]", "[...]"]
    assert second.text == "[CARD]"
    assert live.final(_segment("customer", 8.0, "is that ok")).text == "is that ok"


def test_live_code_after_the_agents_question_is_masked() -> None:
    live = LiveRedactor()
    live.final(_segment("agent", 0.0, "and the security code on the back"))
    assert live.partial("customer", "seven three") == "[...]"
    assert live.final(_segment("customer", 3.0, "seven three one")).text == "[CVV]"
