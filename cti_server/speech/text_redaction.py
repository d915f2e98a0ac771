"""Redaction of transcript text before it is stored: payment cards, card codes, Chinese resident
ID numbers, phone numbers and e-mail addresses.

Recognisers write numbers as words ("four five three two", "forty five thirty two", "四五三二",
"四十五"), people as digits with spaces or dashes; all are read as runs of digits, each digit
keeping its place in the text, so that a redaction is a span of the original text (and word
timings can be masked with :func:`masked_words`). A run is redacted only when it is what it
claims to be: a card number passes the Luhn check, an ID number its ISO 7064 check character, a
phone number is valid for its region (``phonenumbers``). Order numbers that fail Luhn, amounts
and dates are kept.

A call is redacted as one time-ordered sequence of both speakers' utterances, because what is
sensitive is often split: the agent asks for the security code and the customer answers "seven
three one" in an utterance of its own; a customer reads a card in two breaths. Card talk
therefore carries into the next few utterances, and a run that ends one utterance continues in
the same speaker's next one. Live text (an utterance not finished, or a speaker who may go on)
holds back a digit run at its end: it may yet become a card.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import phonenumbers

from cti_server.events import Utterance

Kind = Literal["card", "cvv", "cn_id", "phone", "email", "held"]
LABELS: dict[Kind, str] = {
    "card": "[CARD]",
    "cvv": "[CVV]",
    "cn_id": "[ID]",
    "phone": "[PHONE]",
    "email": "[EMAIL]",
    "held": "[...]",  # live text: digits that may still become a card
}
REGIONS = ("CN", "US", "GB")


def regions_for(region: str) -> tuple[str, ...]:
    """The regions whose numbers are redacted where the deployment's region is ``region``: its
    own, then the US and GB forms callers and agents also read out."""
    return tuple(dict.fromkeys((region, "US", "GB")))


@dataclass(frozen=True, slots=True)
class Redaction:
    kind: Kind
    start: int  # span in the original text
    end: int


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    redactions: tuple[Redaction, ...]  # in the original text's coordinates, in order


_UNITS = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "nought": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 2,
    "thirty": 3,
    "forty": 4,
    "fourty": 4,
    "fifty": 5,
    "sixty": 6,
    "seventy": 7,
    "eighty": 8,
    "ninety": 9,
}
_HAN_DIGITS = {
    "零": 0,
    "〇": 0,
    "洞": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_REPEAT = {"double": 2, "triple": 3}


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


# one token of a spoken or written number: ASCII/full-width digits, a digit, teen or tens word,
# "hundred", a Han digit, 十 or 百, a repeat word, or X (the check character of an ID number)
_TOKEN = re.compile(
    r"[0-9０-９]|[xX](?![a-zA-Z])|[零〇洞一幺二两三四五六七八九十百]"
    rf"|\b(?:{_alternation([*_UNITS, *_TEENS, *_TENS, *_REPEAT])}|hundred(?: and)?)\b",
    re.IGNORECASE,
)
_GAP = re.compile(r"[ \t\-]{0,3}")  # what may separate the digits of one number
_EDGE = " \t,.;:!?，。、；：！？"  # what may stand between a run and its utterance's edge
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
CARD_TALK_UTTERANCES = 4  # card talk carries into this many following utterances ...
CARD_TALK_SECONDS = 30.0  # ... that start within this many seconds of its end
JOIN_SECONDS = 10.0  # a run continues in its speaker's next utterance started this soon
HOLD_DIGITS = 2  # live text holds back a run of this many digits or more at its end
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_MOBILE_CN = re.compile(r"1[3-9]\d{9}")


TokenKind = Literal[
    "digit", "word", "teen", "tens", "hundred", "ten_han", "hundred_han", "repeat", "x"
]
_MARKS: dict[str, tuple[TokenKind, int]] = {
    "十": ("ten_han", 0),
    "百": ("hundred_han", 0),
    "x": ("x", 0),
}
_WORDS: dict[str, tuple[TokenKind, int]] = {
    **{w: ("word", v) for w, v in _UNITS.items()},
    **{w: ("teen", v) for w, v in _TEENS.items()},
    **{w: ("tens", v) for w, v in _TENS.items()},
    **{w: ("repeat", v) for w, v in _REPEAT.items()},
    **{w: ("digit", v) for w, v in _HAN_DIGITS.items()},
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    value: int
    start: int
    end: int

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def _token(m: re.Match[str]) -> _Token:
    low = m.group(0).lower()
    found: tuple[TokenKind, int]
    if low.startswith("hundred"):
        found = ("hundred", 0)
    else:  # a word or mark, else an ASCII or full-width digit
        found = _WORDS.get(low) or _MARKS.get(low) or ("digit", int(low))
    return _Token(*found, m.start(), m.end())


@dataclass(frozen=True, slots=True)
class _Run:
    digits: str  # may end in X
    positions: tuple[tuple[int, int], ...]  # span of the token each digit came from

    @property
    def span(self) -> tuple[int, int]:
        return self.positions[0][0], self.positions[-1][1]


class _Reader:
    """Digits out of one group of number tokens: words one by one ("four five"), in pairs
    ("forty five", "fifteen", "四十五"), with hundreds ("four hundred twelve", "四百一十二")."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.digits: list[tuple[str, tuple[int, int]]] = []
        self.runs: list[_Run] = []

    def _peek(self, ahead: int = 0) -> _Token | None:
        at = self.i + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def _emit(self, digit: int | str, token: _Token) -> None:
        self.digits.append((str(digit), token.span))

    def _close(self) -> None:
        if self.digits:
            self.runs.append(
                _Run("".join(d for d, _ in self.digits), tuple(p for _, p in self.digits))
            )
        self.digits = []

    def read(self) -> list[_Run]:
        repeat = 1
        while (token := self._peek()) is not None:
            self.i += 1
            if token.kind == "repeat":
                repeat = token.value
                continue
            if token.kind == "x":  # the check character ends an ID number
                if self.digits:
                    self._emit("X", token)
                self._close()
            elif token.kind in ("digit", "word"):
                self._digit(token, repeat)
            elif token.kind == "ten_han":  # 十五: fifteen
                self._emit(1, token)
                self._units_han(token)
            elif token.kind in ("teen", "tens"):
                self.i -= 1
                self._pair_en(token, leading=False)
            else:  # a lone hundred is a word, not a digit
                self._close()
            repeat = 1
        self._close()
        return self.runs

    def _digit(self, token: _Token, repeat: int) -> None:
        """A digit, or the head of "four hundred ...", 四十五, 四百一十二."""
        after = self._peek()
        if after is not None and after.kind == "hundred" and token.kind == "word":
            self.i += 1
            self._emit(token.value, token)
            self._pair_en(after)
        elif after is not None and after.kind == "hundred_han":
            self.i += 1
            self._emit(token.value, token)
            self._pair_han(after)
        elif after is not None and after.kind == "ten_han":
            self.i += 1
            self._emit(token.value, token)
            self._units_han(after)
        else:
            for _ in range(repeat):
                self._emit(token.value, token)

    def _pair_en(self, anchor: _Token, *, leading: bool = True) -> None:
        """The two digits after "hundred" (``leading``), or a tens or teen word here."""
        token = self._peek()
        if token is not None and token.kind == "teen":
            self.i += 1
            self._emit(token.value // 10, token)
            self._emit(token.value % 10, token)
        elif token is not None and token.kind == "tens":
            self.i += 1
            self._emit(token.value, token)
            unit = self._peek()
            if unit is not None and unit.kind == "word" and unit.value:
                self.i += 1
                self._emit(unit.value, unit)
            else:
                self._emit(0, token)
        elif leading and token is not None and token.kind == "word" and token.value:
            self.i += 1
            self._emit(0, anchor)
            self._emit(token.value, token)
        elif leading:
            self._emit(0, anchor)
            self._emit(0, anchor)

    def _units_han(self, ten: _Token) -> None:
        """The units after 十: 四十五 is 45, 四十 is 40."""
        unit = self._peek()
        if unit is not None and unit.kind == "digit" and unit.value and unit.end - unit.start == 1:
            self.i += 1
            self._emit(unit.value, unit)
        else:
            self._emit(0, ten)

    def _pair_han(self, hundred: _Token) -> None:
        """The two digits after 百: 四百一十二 412, 四百零五 405, 四百 400."""
        token, after = self._peek(), self._peek(1)
        if token is not None and token.kind == "digit" and after is not None:
            if after.kind == "ten_han":
                self.i += 2
                self._emit(token.value, token)
                self._units_han(after)
                return
            if token.value == 0 and after.kind == "digit":
                self.i += 2
                self._emit(0, token)
                self._emit(after.value, after)
                return
        self._emit(0, hundred)
        self._emit(0, hundred)


def _runs(text: str) -> list[_Run]:
    runs: list[_Run] = []
    group: list[_Token] = []
    for m in _TOKEN.finditer(text):
        if group and not _GAP.fullmatch(text[group[-1].end : m.start()]):
            runs += _Reader(group).read()
            group = []
        group.append(_token(m))
    if group:
        runs += _Reader(group).read()
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


def redact(text: str, regions: Sequence[str] = REGIONS) -> Redacted:
    """Find and mask sensitive spans; ``regions`` are where phone numbers without + come from."""
    return redact_sequence([Utterance(text)], regions)[0]


@dataclass(frozen=True, slots=True)
class _Piece:
    utterance: int
    run: _Run


def redact_sequence(
    utterances: Sequence[Utterance],
    regions: Sequence[str] = REGIONS,
    *,
    still_speaking: Collection[str] = (),
) -> list[Redacted]:
    """A call's utterances (both speakers, in time order) redacted together, one result each.

    ``still_speaking``: speakers whose last utterance here may go on (live text): a digit run
    that ends it is held back (``[...]``) unless already redacted.
    """
    found: list[list[Redaction]] = []
    talk: list[list[int]] = []  # per utterance: where card talk ends
    for u in utterances:
        found.append(_written(u.text, regions))
        talk.append([m.end() for m in _CARD_TALK.finditer(u.text)])
    runs = [_runs(u.text) for u in utterances]
    for chain in _chains(utterances, runs):
        _classify(chain, utterances, regions, found, talk)
    for speaker in still_speaking:
        last = max((i for i, u in enumerate(utterances) if u.speaker == speaker), default=None)
        if last is not None and runs[last]:
            run = runs[last][-1]
            if _ends(utterances[last].text, run) and len(run.digits) >= HOLD_DIGITS:
                found[last].append(Redaction("held", *run.span))
    return [_apply(u.text, f) for u, f in zip(utterances, found, strict=True)]


def _written(text: str, regions: Sequence[str]) -> list[Redaction]:
    """E-mails, and phone numbers as ``phonenumbers`` finds them in text."""
    found = [Redaction("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    found += [Redaction("email", m.start(), m.end()) for m in _SPOKEN_EMAIL.finditer(text)]
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            found.append(Redaction("phone", match.start, match.end))
    return found


def _ends(text: str, run: _Run) -> bool:
    return not text[run.span[1] :].strip(_EDGE)


def _begins(text: str, run: _Run) -> bool:
    return not text[: run.span[0]].strip(_EDGE)


def _chains(utterances: Sequence[Utterance], runs: list[list[_Run]]) -> list[list[_Piece]]:
    """Runs, a run that ends an utterance joined with one that begins the same speaker's next
    utterance (soon enough): one number read in two breaths. In order of their first digit."""
    chains: list[list[_Piece]] = []
    open_chain: dict[str, tuple[list[_Piece], float]] = {}  # speaker → chain ending, its end
    for i, u in enumerate(utterances):
        previous = open_chain.pop(u.speaker, None)
        for n, run in enumerate(runs[i]):
            piece = _Piece(i, run)
            if (
                n == 0
                and previous is not None
                and _begins(u.text, run)
                and u.start - previous[1] <= JOIN_SECONDS
            ):
                chain = previous[0]
                chain.append(piece)
            else:
                chain = [piece]
                chains.append(chain)
            if n == len(runs[i]) - 1 and _ends(u.text, run) and run.digits[-1] != "X":
                open_chain[u.speaker] = (chain, u.end)
    return chains


def _classify(
    chain: list[_Piece],
    utterances: Sequence[Utterance],
    regions: Sequence[str],
    found: list[list[Redaction]],
    talk: list[list[int]],
) -> None:
    """Redact the longest sensitive stretches of a chain, from its start: a card read in two
    breaths, then perhaps its code in a third."""
    i = 0
    while i < len(chain):
        for j in range(len(chain), i, -1):
            part = chain[i:j]
            kind = _kind("".join(p.run.digits for p in part), part[0], utterances, regions, talk)
            if kind is not None:
                for piece in part:
                    found[piece.utterance].append(Redaction(kind, *piece.run.span))
                if kind == "card":  # the code is often asked for next
                    talk[part[-1].utterance].append(part[-1].run.span[1])
                i = j
                break
        else:
            i += 1


def _kind(
    digits: str,
    first: _Piece,
    utterances: Sequence[Utterance],
    regions: Sequence[str],
    talk: list[list[int]],
) -> Kind | None:
    n = len(digits)
    if n == 18 and cn_id_valid(digits):
        return "cn_id"
    if 13 <= n <= 19 and luhn(digits):
        return "card"
    if 7 <= n <= 15 and digits.isdigit() and _phone(digits, regions):
        return "phone"
    if n in (3, 4) and _after_card_talk(first, utterances, talk):
        return "cvv"
    return None


def _after_card_talk(piece: _Piece, utterances: Sequence[Utterance], talk: list[list[int]]) -> bool:
    """Card talk shortly before, in the same utterance or in one of the few before it (the
    agent's question, answered by the customer)."""
    at, start = piece.utterance, piece.run.span[0]
    if any(0 <= start - end <= _CVV_WINDOW for end in talk[at]):
        return True
    began = utterances[at].start
    return any(
        talk[k] and began - utterances[k].end <= CARD_TALK_SECONDS
        for k in range(max(0, at - CARD_TALK_UTTERANCES), at)
    )


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
