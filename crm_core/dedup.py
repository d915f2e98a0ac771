"""Probable duplicates among customer records: shared phones or e-mails, similar names.

Names are compared after :func:`normalise_name` (NFKC, casefold, no punctuation, legal and
generic suffixes of organisations dropped) with rapidfuzz. Chinese, Japanese and Korean
names have no spaces between words, so they are compared character by character.

:func:`find_duplicates` does not compare every record with every other: records are put in
blocks (a shared phone, a shared e-mail, or a shared name key; see :func:`_name_keys`) and
only records that share a block are compared. Everything here is pure: no database, no I/O.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler, Levenshtein

KINDS = ("person", "organisation")

# Dropped from the end of an organisation's name, repeatedly ("… (集团) 股份有限公司").
_CJK_ORG_SUFFIXES = tuple(
    sorted(
        (
            "股份有限公司",
            "有限责任公司",
            "有限公司",
            "有限合伙",
            "总公司",
            "總公司",
            "分公司",
            "子公司",
            "公司",
            "集团",
            "集團",
            "控股",
            "股份",
        ),
        key=len,
        reverse=True,
    )
)
_LATIN_ORG_SUFFIXES = frozenset(
    {
        "co",
        "company",
        "corp",
        "corporation",
        "inc",
        "incorporated",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "plc",
        "gmbh",
        "kg",
        "ag",
        "sa",
        "sas",
        "srl",
        "bv",
        "nv",
        "pty",
        "group",
        "holding",
        "holdings",
    }
)

# A person's name in a CJK script is two or three characters, so one wrong character (a
# slip of the input method: 张伟 / 张玮) is the whole difference; such names score this much.
_CJK_PERSON_SLIP_SCORE = 80.0

# Evidence weights, combined as a noisy OR (see _combined_score).
_PHONE_WEIGHT = 0.75
_EMAIL_WEIGHT = 0.85
_NAME_WEIGHT = 0.9

# A name block larger than this is not compared pairwise: each of its records is compared
# with its _WINDOW neighbours in the block sorted by name (a sorted-neighbourhood pass).
_MAX_BLOCK = 400
_WINDOW = 30

_PHONE_NOISE = re.compile(r"[\s\-().\u00a0/]")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3134F  # CJK extensions B..G
    )


@dataclass(frozen=True)
class CustomerRecord:
    """The parts of a customer that tell duplicates apart."""

    id: int
    kind: Literal["person", "organisation"]
    name: str
    phones: frozenset[str]
    emails: frozenset[str]

    def __post_init__(self) -> None:
        _check_kind(self.kind)


@dataclass(frozen=True)
class DuplicateCandidate:
    """Two records that are probably one customer; ``first < second``, score 0..100."""

    first: int
    second: int
    score: float
    reasons: tuple[str, ...]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _strip_org_affixes(tokens: list[str]) -> list[str]:
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    changed = True
    while changed:
        changed = False
        last = tokens[-1]
        if len(tokens) > 1 and last in _LATIN_ORG_SUFFIXES:
            tokens = tokens[:-1]
            changed = True
            continue
        for suffix in _CJK_ORG_SUFFIXES:
            if last.endswith(suffix):
                if len(last) > len(suffix):
                    tokens = [*tokens[:-1], last[: -len(suffix)]]
                    changed = True
                elif len(tokens) > 1:
                    tokens = tokens[:-1]
                    changed = True
                break
    return tokens


def _name_tokens(name: str, kind: str) -> list[str]:
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else " " for c in text)
    tokens = kept.split()
    if tokens and kind == "organisation":
        tokens = _strip_org_affixes(tokens)
    return tokens


def normalise_name(name: str, kind: str) -> str:
    """The comparable form of a name.

    NFKC, casefolded, punctuation dropped, whitespace collapsed to one space between words
    and dropped next to CJK characters (``"山西 煤业"`` and ``"山西煤业"`` are the same). For
    organisations a leading "the" and trailing legal or generic suffixes are dropped,
    repeatedly: ``"Acme Co., Ltd."`` → ``"acme"``, ``"山西煤业(集团)有限责任公司"`` →
    ``"山西煤业"``.
    """
    _check_kind(kind)
    tokens = _name_tokens(name, kind)
    if not tokens:
        return ""
    parts = [tokens[0]]
    for token in tokens[1:]:
        if not (_is_cjk(parts[-1][-1]) or _is_cjk(token[0])):
            parts.append(" ")
        parts.append(token)
    return "".join(parts)


@dataclass(frozen=True)
class _Name:
    spaced: str  # normalise_name's result
    compact: str  # the same without spaces
    cjk: bool

    @classmethod
    def of(cls, name: str, kind: str) -> _Name:
        spaced = normalise_name(name, kind)
        compact = spaced.replace(" ", "")
        return cls(spaced, compact, any(_is_cjk(c) for c in compact))


def _similarity(a: _Name, b: _Name, kind: str) -> float:
    if not a.compact or not b.compact:
        return 0.0
    if a.compact == b.compact:
        return 100.0
    score = max(fuzz.ratio(a.compact, b.compact), fuzz.token_sort_ratio(a.spaced, b.spaced))
    if a.cjk or b.cjk:
        score = max(score, 100.0 * JaroWinkler.normalized_similarity(a.compact, b.compact))
        if (
            kind == "person"
            and min(len(a.compact), len(b.compact)) >= 2
            and Levenshtein.distance(a.compact, b.compact, score_cutoff=1) <= 1
        ):
            score = max(score, _CJK_PERSON_SLIP_SCORE)
    return float(score)


def name_similarity(a: str, b: str, kind: str) -> float:
    """How alike two names of the same kind are, 0..100, on their normalised forms.

    The best of rapidfuzz's ``ratio`` (on the names without spaces: "McDonald" /
    "Mc Donald") and ``token_sort_ratio`` (word order: "Smith, John" / "John Smith").
    When either name is in a CJK script, also Jaro-Winkler on the characters, which
    weighs a shared beginning (山西煤业 / 山西煤矿 / 山西煤产品总公司, all ≥ 85), and for
    persons a one-character difference (张伟 / 张玮) scores at least 80. An empty name is
    similar to nothing (0).
    """
    _check_kind(kind)
    return _similarity(_Name.of(a, kind), _Name.of(b, kind), kind)


def _phone_key(phone: str) -> str:
    return _PHONE_NOISE.sub("", unicodedata.normalize("NFKC", phone))


def _email_key(email: str) -> str:
    key = unicodedata.normalize("NFKC", email).strip().casefold()
    return key if "@" in key else ""


@dataclass(frozen=True)
class _Prepared:
    record: CustomerRecord
    name: _Name
    phones: frozenset[str]
    emails: frozenset[str]

    @classmethod
    def of(cls, record: CustomerRecord) -> _Prepared:
        return cls(
            record,
            _Name.of(record.name, record.kind),
            frozenset(k for k in map(_phone_key, record.phones) if k),
            frozenset(k for k in map(_email_key, record.emails) if k),
        )


def _combined_score(phones: int, emails: int, name: float | None) -> float:
    """Noisy OR: ``100 * (1 - (1 - .75)^phones * (1 - .85)^emails * (1 - .9 * name/100))``.

    One shared phone alone scores 75, one shared e-mail 85, both 96.3; a name alone scores
    90 % of its similarity (an identical name 90, a similarity of 80 gives 72).
    """
    doubt = (1 - _PHONE_WEIGHT) ** phones * (1 - _EMAIL_WEIGHT) ** emails
    if name is not None:
        doubt *= 1 - _NAME_WEIGHT * name / 100
    return round(100 * (1 - doubt), 1)


def _evaluate(a: _Prepared, b: _Prepared, name_threshold: float) -> DuplicateCandidate | None:
    if a.record.id == b.record.id:
        return None
    phones = sorted(a.phones & b.phones)
    emails = sorted(a.emails & b.emails)
    similarity: float | None = None
    if a.record.kind == b.record.kind:
        similarity = _similarity(a.name, b.name, a.record.kind)
        if similarity < name_threshold:
            similarity = None
    if not phones and not emails and similarity is None:
        return None
    reasons = [f"same phone {p}" for p in phones] + [f"same e-mail {e}" for e in emails]
    if similarity is not None:
        same = similarity >= 100
        reasons.append("same name" if same else f"similar name ({math.floor(similarity)})")
    first, second = sorted((a.record.id, b.record.id))
    return DuplicateCandidate(
        first=first,
        second=second,
        score=_combined_score(len(phones), len(emails), similarity),
        reasons=tuple(reasons),
    )


def _name_keys(prepared: _Prepared) -> set[str]:
    return _keys_of(prepared.name, prepared.record.kind)


def name_keys(name: str, kind: str) -> set[str]:
    """The blocking keys of a name, as :func:`find_duplicates` uses them.

    The CRM stores them per customer, so that finding the duplicates of one record in a
    large database reads only the records the library would compare it with.
    """
    _check_kind(kind)
    return _keys_of(_Name.of(name, kind), kind)


def _keys_of(name: _Name, kind: str) -> set[str]:
    """Blocking keys of a name; records are compared only when they share a key.

    * CJK: the first two characters (山西煤业 / 山西煤矿); for organisations also the last two
      (山西煤业 / 陕西煤业); for names of up to four characters the name and each
      one-character deletion of it, which every name one slip away shares (张伟 / 张玮 → 张).
    * Latin and others: the first three letters of the name without spaces and of each
      word (of the first two words for organisations, whose later words are generic), and
      the last three letters of the name, for typos at the beginning.

    A key is ``kind:type:value``, so persons and organisations never share a name block;
    type ``s`` (a suffix) tells :func:`_block_pairs` to sort a large block by reversed name.
    """
    compact = name.compact
    if not compact:
        return set()
    if name.cjk:
        keys = {f"{kind}:p:{compact[:2]}"}
        if kind == "organisation":
            keys.add(f"{kind}:s:{compact[-2:]}")
        if len(compact) <= 4:
            keys.add(f"{kind}:d:{compact}")
            keys.update(f"{kind}:d:{compact[:i]}{compact[i + 1 :]}" for i in range(len(compact)))
        return keys
    words = name.spaced.split()
    if kind == "organisation":
        words = words[:2]
    keys = {f"{kind}:p:{compact[:3]}", f"{kind}:s:{compact[-3:]}"}
    keys.update(f"{kind}:p:{word[:3]}" for word in words if len(word) >= 2)
    return keys


def _block_pairs(
    key: str, members: list[int], prepared: list[_Prepared]
) -> Iterator[tuple[int, int]]:
    if len(members) <= _MAX_BLOCK:
        yield from combinations(members, 2)
        return
    step = -1 if key.split(":")[1] == "s" else 1
    ordered = sorted(members, key=lambda i: prepared[i].name.compact[::step])
    for position, index in enumerate(ordered):
        for other in ordered[position + 1 : position + 1 + _WINDOW]:
            yield index, other


def find_duplicates(
    records: Iterable[CustomerRecord], name_threshold: float = 80.0
) -> list[DuplicateCandidate]:
    """Probable duplicate pairs, most probable first.

    Records sharing a phone or an e-mail (case-insensitive) are always a pair; other records
    of the same kind are a pair when :func:`name_similarity` reaches ``name_threshold``.
    Only records sharing a block are compared: every pair sharing a phone or an e-mail, and
    records sharing a name key (:func:`_name_keys`); a name block larger than 400 records is
    searched with a sorted-neighbourhood pass instead of pairwise, so that very common name
    beginnings cannot make the search quadratic (at the price of missing some pairs there).
    """
    prepared = [_Prepared.of(record) for record in records]
    contact_blocks: defaultdict[str, list[int]] = defaultdict(list)
    name_blocks: defaultdict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(prepared):
        for phone in item.phones:
            contact_blocks[f"phone:{phone}"].append(index)
        for email in item.emails:
            contact_blocks[f"email:{email}"].append(index)
        for key in _name_keys(item):
            name_blocks[key].append(index)

    def pairs() -> Iterator[tuple[int, int]]:
        for members in contact_blocks.values():
            yield from combinations(members, 2)
        for key, members in name_blocks.items():
            yield from _block_pairs(key, members, prepared)

    seen: set[tuple[int, int]] = set()
    found: list[DuplicateCandidate] = []
    for i, j in pairs():
        pair = (i, j) if i < j else (j, i)
        if pair in seen:
            continue
        seen.add(pair)
        candidate = _evaluate(prepared[i], prepared[j], name_threshold)
        if candidate is not None:
            found.append(candidate)
    return _ranked(found)


def duplicates_of(
    record: CustomerRecord, others: Iterable[CustomerRecord], name_threshold: float = 80.0
) -> list[DuplicateCandidate]:
    """Probable duplicates of one record among ``others``, most probable first.

    Same rules as :func:`find_duplicates`, but every other record is compared (one linear
    pass, no blocking); a record with the same id as ``record`` is skipped.
    """
    target = _Prepared.of(record)
    found = [
        candidate
        for other in others
        if (candidate := _evaluate(target, _Prepared.of(other), name_threshold)) is not None
    ]
    return _ranked(found)


def _ranked(candidates: list[DuplicateCandidate]) -> list[DuplicateCandidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.first, c.second))
