"""Text handling shared by training and detection, so that both see exactly the same features.

The n-gram analysers reproduce scikit-learn's ``TfidfVectorizer`` (word, ``char`` and ``char_wb``)
so that the detector needs no scikit-learn at run time: the trained vocabulary, idf and
coefficients are plain data. ``tests/unit/complaints/test_complaints_data.py`` checks the
equivalence.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_URL = re.compile(r"(?:https?://|www\.|pic\.twitter\.com/)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WHITE_SPACES = re.compile(r"\s\s+")
_SPACES = re.compile(r"\s+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def is_cjk(ch: str) -> bool:
    """Han characters (CJK unified ideographs and extension A, compatibility ideographs)."""
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def language_of(text: str) -> str:
    """``"zh"`` when Han characters are a fair part of the letters, else ``"en"``.

    Recognisers and customers mix scripts ("我的iPhone坏了"), so one Han character in five
    letters is enough; a purely Latin text is English for our purposes.
    """
    return Script.of(text).language


@dataclass(frozen=True, slots=True)
class Script:
    """Han characters and letters counted: what :func:`language_of` decides on. Counts add up,
    so a call's language is kept up to date as its lines come without reading them again."""

    han: int = 0
    letters: int = 0

    @classmethod
    def of(cls, text: str) -> Script:
        return cls(sum(1 for ch in text if is_cjk(ch)), sum(1 for ch in text if ch.isalpha()))

    def __add__(self, other: Script) -> Script:
        return Script(self.han + other.han, self.letters + other.letters)

    @property
    def language(self) -> str:
        return "zh" if self.han and self.han * 5 >= self.letters else "en"


@dataclass(frozen=True, slots=True)
class Normalized:
    """Lower-cased text for cue matching, with the way back to the original's characters.

    Spaces between two Han characters are dropped (recognisers put spaces between Chinese words,
    which cue patterns should not need to know about) and runs of spaces become one.
    """

    text: str
    offsets: tuple[int, ...]  # original index of each normalized character

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if end <= start:
            at = self.offsets[start] if start < len(self.offsets) else 0
            return at, at
        return self.offsets[start], self.offsets[end - 1] + 1


def normalize(original: str) -> Normalized:
    chars: list[str] = []
    offsets: list[int] = []
    n = len(original)
    for i, ch in enumerate(original):
        if ch.isspace():
            if not chars or chars[-1] == " ":
                continue
            j = i + 1
            while j < n and original[j].isspace():
                j += 1
            if j == n or (is_cjk(chars[-1]) and is_cjk(original[j])):
                continue
            chars.append(" ")
            offsets.append(i)
            continue
        low = ch.lower()
        if len(low) != 1:
            low = ch
        chars.append(low.translate(_APOSTROPHES))
        offsets.append(i)
    return Normalized("".join(chars), tuple(offsets))


PART_CHARACTERS = 500
"""The longest text analysed as one part (a few spoken sentences, a long written message): a
longer utterance is cut into parts, so that the work per part, and per window of parts, is
bounded and a transcript costs time in proportion to its length."""
_BREAKS = frozenset(" \t\n\r\u3000。！？，、；：,.!?;:")


def parts(text: str, limit: int = PART_CHARACTERS) -> list[tuple[int, str]]:
    """``text`` cut into pieces of at most ``limit`` characters, each with its offset: after the
    last space or punctuation of the second half of a piece when there is one, else at the
    limit. The pieces put together are the text."""
    if limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    found: list[tuple[int, str]] = []
    start = 0
    while len(text) - start > limit:
        end = start + limit
        cut = next(
            (i + 1 for i in range(end - 1, start + limit // 2 - 1, -1) if text[i] in _BREAKS), end
        )
        found.append((start, text[start:cut]))
        start = cut
    found.append((start, text[start:]))
    return found


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the text model reads: text without handles and links, and whether it addressed us."""

    text: str
    addressed: bool


def prepare(text: str, *, addressed: bool | None = None) -> Prepared:
    """Remove links and @handles (kept as the ``addressed`` fact) and collapse spaces.

    Transcript segments are always addressed to the company, so the detector passes
    ``addressed=True``; for written messages it is whether they name a handle.
    """
    mentioned = bool(_MENTION.search(text))
    cleaned = _MENTION.sub(" ", _URL.sub(" ", text)).translate(_APOSTROPHES)
    cleaned = _SPACES.sub(" ", cleaned).strip()
    return Prepared(cleaned, mentioned if addressed is None else addressed)


def analyse(text: str, analyzer: str, ngram_range: tuple[int, int]) -> list[str]:
    """The n-grams scikit-learn's vectorizer would produce (lowercase, default token pattern)."""
    low = text.lower()
    min_n, max_n = ngram_range
    if analyzer == "word":
        tokens = _TOKEN.findall(low)
        grams: list[str] = []
        for size in range(min_n, max_n + 1):
            grams.extend(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
        return grams
    low = _WHITE_SPACES.sub(" ", low)
    if analyzer == "char":
        return [
            low[i : i + size]
            for size in range(min_n, max_n + 1)
            for i in range(len(low) - size + 1)
        ]
    if analyzer == "char_wb":
        grams = []
        for word in low.split():
            padded = f" {word} "
            for size in range(min_n, max_n + 1):
                offset = 0
                grams.append(padded[offset : offset + size])
                while offset + size < len(padded):
                    offset += 1
                    grams.append(padded[offset : offset + size])
                if offset == 0:
                    break
        return grams
    raise ValueError(f"unknown analyzer {analyzer!r}")


def tfidf(grams: Iterable[str], idf: Mapping[str, float]) -> dict[str, float]:
    """Sublinear tf x idf, l2-normalised, over the known terms only (as scikit-learn does)."""
    counts = Counter(g for g in grams if g in idf)
    weights = {term: (1.0 + math.log(count)) * idf[term] for term, count in counts.items()}
    norm = math.sqrt(sum(w * w for w in weights.values()))
    if norm == 0.0:
        return {}
    return {term: w / norm for term, w in weights.items()}
