"""Redaction before storage: cards (Luhn), codes after card talk, Chinese ID numbers, phones and
e-mails, written or spoken, go; order numbers that fail Luhn, amounts and dates stay."""

from __future__ import annotations

import pytest

from cti_server.events import Utterance
from cti_server.speech.text_redaction import (
    cn_id_valid,
    luhn,
    masked_words,
    redact,
    redact_sequence,
)

CARD = "4532015112830366"  # passes Luhn
NOT_CARD = "4532015112830367"  # the same with the last digit changed: an order number


def test_luhn_and_id_checks() -> None:
    assert luhn(CARD)
    assert not luhn(NOT_CARD)
    assert cn_id_valid("11010519491231002X")
    assert not cn_id_valid("110105194912310021")  # wrong check character
    assert not cn_id_valid("110105194913310025")  # month 13


@pytest.mark.parametrize(
    ("text", "expected", "kinds"),
    [
        (f"my card is {CARD}", "my card is [CARD]", ["card"]),
        ("my card is 4532 0151 1283 0366 thanks", "my card is [CARD] thanks", ["card"]),
        ("it's 4532-0151-1283-0366", "it's [CARD]", ["card"]),
        (
            "four five three two zero one five one one two eight three zero three six six",
            "[CARD]",
            ["card"],
        ),
        (
            "four five three two oh one five one one two eight three oh three double six",
            "[CARD]",
            ["card"],
        ),
        ("卡号是四五三二零一五一一二八三零三六六", "卡号是[CARD]", ["card"]),
        ("卡号 四五三二 零一五一 一二八三 零三六六", "卡号 [CARD]", ["card"]),
        (
            f"the card is {CARD} and the security code on the back is 123",
            "the card is [CARD] and the security code on the back is [CVV]",
            ["card", "cvv"],
        ),
        ("cvv is seven three one", "cvv is [CVV]", ["cvv"]),
        ("卡背面的三位数是四五六", "卡背面的三位数是[CVV]", ["cvv"]),
        ("身份证号码是11010519491231002X", "身份证号码是[ID]", ["cn_id"]),
        ("身份证 110105 19491231 002x", "身份证 [ID]", ["cn_id"]),
        ("call me on 13812345678", "call me on [PHONE]", ["phone"]),
        ("我的手机是幺三八 幺二三四 五六七八", "我的手机是[PHONE]", ["phone"]),
        ("or +44 20 7946 0958 in London", "or [PHONE] in London", ["phone"]),
        ("one three eight one two three four five six seven eight", "[PHONE]", ["phone"]),
        ("mail john.smith@example.com please", "mail [EMAIL] please", ["email"]),
        ("it's john dot smith at gmail dot com", "it's [EMAIL]", ["email"]),
    ],
)
def test_sensitive_numbers_are_redacted(text: str, expected: str, kinds: list[str]) -> None:
    result = redact(text)
    assert result.text == expected
    assert [r.kind for r in result.redactions] == kinds


@pytest.mark.parametrize(
    "text",
    [
        f"my order number is {NOT_CARD}",
        "order 4532 0151 1283 0367 has not arrived",
        "I paid $1,299.00 on 2024-05-01 for 3 items",
        "订单号是二零二四零五零一八八六六，一共一百二十三元",
        "the code for the door is 1234",  # no card talk: not a card code
        "I called 3 times on the 12th and waited 45 minutes",
        "ticket 110105194912310021",  # 18 digits with a wrong check character
        "room 502, floor 3, at 10 30",
    ],
)
def test_non_sensitive_numbers_are_kept(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.redactions == ()


def test_spans_let_word_timings_be_masked() -> None:
    words = [
        "card",
        "is",
        "four",
        "five",
        "three",
        "two",
        "zero",
        "one",
        "five",
        "one",
        "one",
        "two",
        "eight",
        "three",
        "zero",
        "three",
        "six",
        "six",
        "thanks",
    ]
    text = " ".join(words)
    result = redact(text)
    (card,) = result.redactions
    spoken = text[card.start : card.end]
    assert spoken.startswith("four")
    assert spoken.endswith("six")
    assert masked_words(words, result.redactions) == list(range(2, 18))


@pytest.mark.parametrize(
    "text",
    [
        "forty five thirty two zero one fifty one twelve eighty three zero three sixty six",
        "four five three two oh one five one twelve eighty three oh three sixty six",
        "四十五 三十二 零一 五十一 十二 八十三 零三 六十六",
        "四五三二 零一五一 一二八三 零三六六",
    ],
)
def test_cards_read_in_tens_and_teens_are_redacted(text: str) -> None:
    assert redact(text).text == "[CARD]"


def test_tens_words_of_an_order_number_are_kept() -> None:
    text = (
        "order forty five thirty two zero one fifty one twelve eighty three zero three sixty seven"
    )
    assert redact(text).text == text
    assert redact("I waited forty five minutes").text == "I waited forty five minutes"


def test_hundreds_are_read_as_digits() -> None:
    assert redact("the cvv is four hundred twelve").text == "the cvv is [CVV]"
    assert redact("背面的安全码是四百零五").text == "背面的安全码是[CVV]"


def _call(*lines: tuple[str, float, str]) -> list[Utterance]:
    return [Utterance(text, speaker, at, at + 2.0) for speaker, at, text in lines]


def test_a_code_answering_the_agents_question_is_redacted() -> None:
    call = _call(
        ("agent", 10.0, "and the security code on the back please"),
        ("customer", 13.0, "seven three one"),
    )
    assert [r.text for r in redact_sequence(call)] == [call[0].text, "[CVV]"]


def test_digits_long_after_card_talk_or_without_it_are_kept() -> None:
    asked_long_ago = _call(
        ("agent", 10.0, "which card did you use"),
        ("customer", 13.0, "the visa"),
        ("agent", 16.0, "thanks"),
        ("customer", 19.0, "okay"),
        ("agent", 22.0, "and how many items"),
        ("customer", 25.0, "seven three one"),
    )
    assert redact_sequence(asked_long_ago)[-1].text == "seven three one"
    no_card_talk = _call(("agent", 10.0, "your room"), ("customer", 13.0, "seven three one"))
    assert redact_sequence(no_card_talk)[-1].text == "seven three one"


def test_a_card_read_in_two_utterances_is_redacted_in_both() -> None:
    call = _call(
        ("customer", 0.0, "it is four five three two zero one five one"),
        ("agent", 3.0, "yes"),
        ("customer", 5.0, "one two eight three zero three six six"),
    )
    assert [r.text for r in redact_sequence(call)] == ["it is [CARD]", "yes", "[CARD]"]
    (first,) = redact_sequence(call)[0].redactions
    assert call[0].text[first.start : first.end].startswith("four")


def test_an_order_number_read_in_two_utterances_is_kept() -> None:
    call = _call(
        ("customer", 0.0, "my order is four five three two zero one five one"),
        ("customer", 5.0, "one two eight three zero three six seven"),
    )
    assert [r.text for r in redact_sequence(call)] == [u.text for u in call]


def test_the_other_speakers_digits_do_not_complete_a_card() -> None:
    call = _call(
        ("customer", 0.0, "four five three two zero one five one"),
        ("agent", 3.0, "one two eight three zero three six six"),
    )
    assert [r.text for r in redact_sequence(call)] == [u.text for u in call]


def test_live_text_holds_back_digits_that_may_become_a_card() -> None:
    call = _call(("customer", 0.0, "my card is four five three two zero one five one"))
    (live,) = redact_sequence(call, still_speaking={"customer"})
    assert live.text == "my card is [...]"
    (stored,) = redact_sequence(call)
    assert stored.text == call[0].text  # eight digits alone are nothing: kept once finished
    ended = _call(("customer", 0.0, "that was order four five three two zero one five one ok"))
    assert redact_sequence(ended, still_speaking={"customer"})[0].text == ended[0].text
