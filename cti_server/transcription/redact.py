"""Redaction of transcript text before it is stored: payment cards, card codes, Chinese resident
ID numbers, phone numbers and e-mail addresses.

Recognisers write numbers as words ("four five three two", "四五三二"), people as digits with
spaces or dashes; both are read as runs of digits, each digit keeping its place in the text, so
that a redaction is a span of the original text (and word timings can be masked with
:func:`masked_words`). A run is redacted only when it is what it claims to be: a card number
passes the Luhn check, an ID number its ISO 7064 check character, a phone number is valid for
its region (``phonenumbers``). Order numbers that fail Luhn, amounts and dates are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import phonenumbers

Kind = Literal["card", "cvv", "cn_id", "phone", "email"]
LABELS: dict[Kind, str] = {
    "card": "[CARD]",
    "cvv": "[CVV]",
    "cn_id": "[ID]",
    "phone": "[PHONE]",
    "email": "[EMAIL]",
}


@dataclass(frozen=True, slots=True)
class Redaction:
    kind: Kind
    start: int  # span in the original text
    end: int


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    redactions: tuple[Redaction, ...]  # in the original text's coordinates, in order


_WORD_DIGITS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "nought": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_HAN_DIGITS = {
    "零": "0",
    "〇": "0",
    "洞": "0",
    "一": "1",
    "幺": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
}
_REPEAT = {"double": 2, "triple": 3}
# one token of a spoken or written number: ASCII/full-width digits, a digit word, a Han digit,
# a repeat word, or X (the check character of an ID number)
_TOKEN = re.compile(
    r"[0-9０-９]|[xX](?![a-zA-Z])|[零〇洞一幺二两三四五六七八九]"
    r"|\b(?:zero|oh|o|nought|one|two|three|four|five|six|seven|eight|nine|double|triple)\b",
    re.IGNORECASE,
)
_GAP = re.compile(r"[ \t\-]{0,3}")  # what may separate the digits of one number
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_SPOKEN_EMAIL = re.compile(
    r"\b[\w]+(?: (?:dot|underscore) [\w]+)* at [\w]+(?: dot [\w]+)*?"
    r" dot (?:com|net|org|cn|edu|gov|co dot uk|co)\b",
    re.IGNORECASE,
)
_CARD_TALK = re.compile(
    r"card|cvv|cvc|cv2|security code|security number|three digits|back of|expir|"
    r"卡|安全码|校验码|背面|有效期",
    re.IGNORECASE,
)
_CVV_WINDOW = 80  # characters after card talk in which a 3-4 digit run is taken for a code
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_MOBILE_CN = re.compile(r"1[3-9]\d{9}")


@dataclass(frozen=True, slots=True)
class _Run:
    digits: str  # may end in X
    positions: tuple[tuple[int, int], ...]  # span of the token each digit came from

    @property
    def span(self) -> tuple[int, int]:
        return self.positions[0][0], self.positions[-1][1]


def _runs(text: str) -> list[_Run]:
    runs: list[_Run] = []
    digits: list[str] = []
    positions: list[tuple[int, int]] = []
    pending_repeat = 1
    last_end = -1

    def close() -> None:
        nonlocal digits, positions, pending_repeat
        if digits:
            runs.append(_Run("".join(digits), tuple(positions)))
        digits, positions, pending_repeat = [], [], 1

    for m in _TOKEN.finditer(text):
        if last_end >= 0 and not _GAP.fullmatch(text[last_end : m.start()]):
            close()
        token = m.group(0)
        low = token.lower()
        last_end = m.end()
        if low in _REPEAT:
            pending_repeat = _REPEAT[low]
            continue
        if low == "x":
            if digits:
                digits.append("X")
                positions.append((m.start(), m.end()))
            close()
            last_end = -1
            continue
        digit = _WORD_DIGITS.get(low) or _HAN_DIGITS.get(token)
        if digit is None:  # ASCII or full-width digit
            digit = str(int(token))
        for _ in range(pending_repeat):
            digits.append(digit)
            positions.append((m.start(), m.end()))
        pending_repeat = 1
    close()
    return runs


def luhn(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def cn_id_valid(number: str) -> bool:
    """18 characters, a plausible birth date, and the ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    month, day = int(number[10:12]), int(number[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31 and number[6:8] in ("18", "19", "20")):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def _phone(digits: str, regions: Sequence[str]) -> bool:
    if _MOBILE_CN.fullmatch(digits):
        return True
    for region in regions:
        try:
            number = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def redact(text: str, regions: Sequence[str] = ("CN", "US", "GB")) -> Redacted:
    """Find and mask sensitive spans; ``regions`` are where phone numbers without + come from."""
    found: list[Redaction] = []
    for m in _EMAIL.finditer(text):
        found.append(Redaction("email", m.start(), m.end()))
    for m in _SPOKEN_EMAIL.finditer(text):
        found.append(Redaction("email", m.start(), m.end()))
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            found.append(Redaction("phone", match.start, match.end))
    card_talk = [m.end() for m in _CARD_TALK.finditer(text)]
    for run in _runs(text):
        start, end = run.span
        kind: Kind | None = None
        n = len(run.digits)
        if n == 18 and cn_id_valid(run.digits):
            kind = "cn_id"
        elif 13 <= n <= 19 and luhn(run.digits):
            kind = "card"
            card_talk.append(end)
        elif 7 <= n <= 15 and run.digits.isdigit() and _phone(run.digits, regions):
            kind = "phone"
        elif n in (3, 4) and any(0 <= start - talk <= _CVV_WINDOW for talk in card_talk):
            kind = "cvv"
        if kind is not None:
            found.append(Redaction(kind, start, end))
    return _apply(text, found)


def _apply(text: str, found: Iterable[Redaction]) -> Redacted:
    merged: list[Redaction] = []
    for r in sorted(found, key=lambda r: (r.start, -r.end)):
        if merged and r.start < merged[-1].end:
            last = merged[-1]
            if r.end > last.end:
                merged[-1] = Redaction(last.kind, last.start, r.end)
            continue
        merged.append(r)
    pieces: list[str] = []
    at = 0
    for r in merged:
        pieces.extend((text[at : r.start], LABELS[r.kind]))
        at = r.end
    pieces.append(text[at:])
    return Redacted("".join(pieces), tuple(merged))


def masked_words(words: Sequence[str], redactions: Sequence[Redaction]) -> list[int]:
    """Indices of the words (of a text that is ``" ".join(words)``) that a redaction touches,
    so that their text and timings can be masked in stored segments too."""
    indices = []
    position = 0
    for i, word in enumerate(words):
        end = position + len(word)
        if any(r.start < end and position < r.end for r in redactions):
            indices.append(i)
        position = end + 1
    return indices
