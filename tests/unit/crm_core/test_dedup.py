"""Probable-duplicate detection among customer records."""

from __future__ import annotations

import random
from typing import Literal

import pytest

from crm_core.dedup import (
    CustomerRecord,
    DuplicateCandidate,
    duplicates_of,
    find_duplicates,
    name_similarity,
    normalise_name,
)

Kind = Literal["person", "organisation"]


def _record(
    id_: int,
    name: str,
    kind: Kind = "person",
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
) -> CustomerRecord:
    return CustomerRecord(id_, kind, name, frozenset(phones), frozenset(emails))


def _pairs(candidates: list[DuplicateCandidate]) -> set[tuple[int, int]]:
    return {(c.first, c.second) for c in candidates}


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("山西煤业(集团)有限责任公司", "organisation", "山西煤业"),
        ("山西煤产品总公司", "organisation", "山西煤产品"),
        ("华为技术有限公司 北京分公司", "organisation", "华为技术有限公司北京"),
        ("中国平安保险（集团）股份有限公司", "organisation", "中国平安保险"),
        ("ＡＣＭＥ　有限公司", "organisation", "acme"),
        ("Acme Co., Ltd.", "organisation", "acme"),
        ("The Acme Group Holdings, Inc.", "organisation", "acme"),
        ("Müller GmbH & Co. KG", "organisation", "müller"),
        ("Limited", "organisation", "limited"),
        ("公司", "organisation", "公司"),
        ("  Smith,  John ", "person", "smith john"),
        ("JOHN SMITH", "person", "john smith"),
        ("张 伟", "person", "张伟"),
        ("Acme Ltd", "person", "acme ltd"),  # suffixes are for organisations only
        ("...", "person", ""),
    ],
)
def test_normalise_name(name: str, kind: str, expected: str) -> None:
    assert normalise_name(name, kind) == expected


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        normalise_name("x", "robot")
    with pytest.raises(ValueError, match="kind"):
        CustomerRecord(1, "robot", "x", frozenset(), frozenset())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        ("山西煤业", "山西煤矿", "organisation"),
        ("山西煤业", "山西煤产品总公司", "organisation"),
        ("山西煤矿", "山西煤产品总公司", "organisation"),
        ("山西煤业有限公司", "山西煤业集团", "organisation"),
        ("张伟", "张玮", "person"),
        ("John Smith", "Smith, John", "person"),
        ("John Smith", "Jon Smith", "person"),
        ("Jon Smith", "Smith, John", "person"),
        ("Acme Ltd", "Acme Limited", "organisation"),
        ("McDonald's", "Mc Donalds", "organisation"),
    ],
)
def test_similar_names(a: str, b: str, kind: str) -> None:
    assert name_similarity(a, b, kind) >= 80
    assert name_similarity(b, a, kind) == pytest.approx(name_similarity(a, b, kind))


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        ("张伟", "李娜", "person"),
        ("John Smith", "Mary Jones", "person"),
        ("北京科技", "北京贸易", "organisation"),
        ("中信", "中兴", "organisation"),
        ("Acme Consulting", "Acme Logistics", "organisation"),
        ("", "", "person"),
    ],
)
def test_dissimilar_names(a: str, b: str, kind: str) -> None:
    assert name_similarity(a, b, kind) < 80


def test_suffix_only_difference_is_identical() -> None:
    assert name_similarity("Acme Ltd", "Acme Limited", "organisation") == 100
    assert name_similarity("山西煤业", "山西煤业有限公司", "organisation") == 100


def test_chinese_organisations_found() -> None:
    records = [
        _record(1, "山西煤业", "organisation"),
        _record(2, "山西煤矿", "organisation"),
        _record(3, "山西煤产品总公司", "organisation"),
        _record(4, "北京贸易有限公司", "organisation"),
        _record(5, "山西煤业", "person"),  # another kind: never a name match
    ]
    found = find_duplicates(records)
    assert _pairs(found) == {(1, 2), (1, 3), (2, 3)}
    assert all(c.reasons[0].startswith("similar name (") for c in found)
    assert found == sorted(found, key=lambda c: -c.score)


def test_english_name_variants_found() -> None:
    records = [
        _record(10, "John Smith"),
        _record(11, "Smith, John"),
        _record(12, "Jon Smith"),
        _record(13, "Mary Jones"),
    ]
    found = find_duplicates(records)
    assert _pairs(found) == {(10, 11), (10, 12), (11, 12)}
    by_pair = {(c.first, c.second): c for c in found}
    assert by_pair[10, 11].reasons == ("same name",)
    assert by_pair[10, 11].score == 90.0
    assert by_pair[10, 12].reasons == ("similar name (94)",)


def test_chinese_person_slip_found() -> None:
    found = find_duplicates([_record(2, "张玮"), _record(1, "张伟"), _record(3, "李娜")])
    assert _pairs(found) == {(1, 2)}
    assert found[0].reasons == ("similar name (80)",)


def test_shared_phone_and_email_are_always_pairs() -> None:
    records = [
        _record(1, "张伟", phones=("+8613800138000",), emails=("ZW@Example.com",)),
        _record(2, "王芳", phones=("+86 138-0013-8000",)),
        _record(3, "Acme", "organisation", emails=("zw@example.com ",)),
        _record(4, "Acme Ltd", "organisation", phones=("+8613800138000",)),
        _record(5, "李娜", phones=("+8613900139000",), emails=("ln@example.com",)),
    ]
    by_pair = {(c.first, c.second): c for c in find_duplicates(records)}
    assert set(by_pair) == {(1, 2), (1, 3), (1, 4), (2, 4), (3, 4)}
    assert by_pair[1, 2].reasons == ("same phone +8613800138000",)
    assert by_pair[1, 2].score == 75.0
    assert by_pair[1, 3].reasons == ("same e-mail zw@example.com",)
    assert by_pair[1, 3].score == 85.0
    assert by_pair[3, 4].reasons == ("same name",)
    assert by_pair[2, 4].reasons == ("same phone +8613800138000",)


def test_evidence_adds_up() -> None:
    a = _record(1, "John Smith", phones=("+441632960001",), emails=("js@example.com",))
    b = _record(2, "Jon Smith", phones=("+441632960001",), emails=("JS@example.com",))
    c = _record(3, "Jon Smith", phones=("+441632960001",))
    found = find_duplicates([a, b, c])
    assert [(x.first, x.second) for x in found] == [(1, 2), (2, 3), (1, 3)]
    assert found[0].reasons == (
        "same phone +441632960001",
        "same e-mail js@example.com",
        "similar name (94)",
    )
    assert 99 < found[0].score <= 100
    assert found[1].score > found[2].score > 75


def test_no_pair_for_unrelated_records() -> None:
    records = [
        _record(1, "张伟", phones=("+8613800138000",), emails=("zw@example.com",)),
        _record(2, "李娜", phones=("+8613900139000",), emails=("ln@example.com",)),
        _record(3, "John Smith", phones=("+441632960001",)),
        _record(4, "Mary Jones", emails=("mary@example.org",)),
        _record(5, "山西煤业有限公司", "organisation"),
        _record(6, "Acme Logistics Ltd", "organisation"),
        _record(7, "", phones=("",)),
        _record(8, "", phones=("",)),
    ]
    assert find_duplicates(records) == []


def test_same_id_is_not_a_pair() -> None:
    assert find_duplicates([_record(1, "张伟"), _record(1, "张伟")]) == []


def test_threshold() -> None:
    records = [_record(1, "张伟"), _record(2, "张玮")]
    assert find_duplicates(records, name_threshold=81) == []
    assert _pairs(find_duplicates(records, name_threshold=80)) == {(1, 2)}


def test_duplicates_of() -> None:
    me = _record(5, "山西煤业有限公司", "organisation", phones=("+863517654321",))
    others = [
        me,
        _record(1, "山西煤矿", "organisation"),
        _record(9, "Shanxi Coal", "organisation", phones=("+86 351 7654321",)),
        _record(3, "北京贸易", "organisation"),
        _record(4, "山西煤业", "person"),
    ]
    found = duplicates_of(me, others)
    assert [(c.first, c.second) for c in found] == [(1, 5), (5, 9)]
    assert found[0].reasons == ("similar name (88)",)
    assert found[1].reasons == ("same phone +863517654321",)


def _synthetic(count: int, seed: int = 7) -> list[CustomerRecord]:
    """Distinct people and companies in Chinese and English, each with its own contacts."""
    rng = random.Random(seed)
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    syllables = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "an", "or")]
    ideographs = [chr(c) for c in range(0x4E00, 0x9FA5)]
    records: list[CustomerRecord] = []
    for index in range(count):
        roll = index % 4
        if roll == 0:
            name = rng.choice(surnames) + "".join(rng.choices(ideographs, k=2))
            kind: Kind = "person"
        elif roll == 1:
            given = "".join(rng.choices(syllables, k=rng.randint(2, 3)))
            family = "".join(rng.choices(syllables, k=rng.randint(2, 4)))
            name = f"{given.title()} {family.title()}"
            kind = "person"
        elif roll == 2:
            name = "".join(rng.choices(ideographs, k=rng.randint(3, 6))) + "有限公司"
            kind = "organisation"
        else:
            words = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(2)]
            name = " ".join(w.title() for w in words) + rng.choice([" Ltd", " Inc", " GmbH", ""])
            kind = "organisation"
        records.append(
            CustomerRecord(
                id=index,
                kind=kind,
                name=name,
                phones=frozenset({f"+86138{index:08d}"}),
                emails=frozenset({f"c{index}@example.com"}),
            )
        )
    return records


def test_find_duplicates_on_20000_records() -> None:
    records = _synthetic(20_000)
    base = len(records)
    planted = {
        (0, base): _record(base, records[0].name, phones=("+86 138 0000 0000",)),
        (1, base + 1): _record(base + 1, records[1].name.upper()),
        (2, base + 2): _record(base + 2, records[2].name[:-4] + "集团", "organisation"),
        (3, base + 3): _record(
            base + 3, records[3].name, "organisation", emails=("C3@EXAMPLE.COM",)
        ),
    }
    found = find_duplicates([*records, *planted.values()])
    pairs = _pairs(found)
    assert set(planted) <= pairs
    # Random names collide now and then, but nowhere near every pair of a block.
    assert len(pairs) < 2_000
    assert all(c.first < c.second and 0 < c.score <= 100 for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


def test_blocking_agrees_with_pairwise_on_a_sample() -> None:
    records = _synthetic(600, seed=3)
    extra = [
        _record(1000, "张伟"),
        _record(1001, "张玮"),
        _record(1002, "John Smith"),
        _record(1003, "Smith, John"),
        _record(1004, "山西煤业", "organisation"),
        _record(1005, "山西煤产品总公司", "organisation"),
    ]
    everything = [*records, *extra]
    pairwise = set()
    for index, record in enumerate(everything):
        pairwise |= _pairs(duplicates_of(record, everything[index + 1 :]))
    assert _pairs(find_duplicates(everything)) == pairwise
    assert {(1000, 1001), (1002, 1003), (1004, 1005)} <= pairwise


def test_similar_beginnings_and_endings_are_blocked_together() -> None:
    records = [
        _record(1, "山西煤业有限公司", "organisation"),
        _record(2, "陕西煤业有限公司", "organisation"),  # differs in the first character
        _record(3, "Bupu Lipe GmbH", "organisation"),
        _record(4, "Bubu Lenipe GmbH", "organisation"),  # typos in both words' beginnings
    ]
    assert _pairs(find_duplicates(records)) == {(1, 2), (3, 4)}


def test_oversized_block_still_finds_close_names() -> None:
    rng = random.Random(11)
    letters = "bcdfghjklmnpqrstvwxz"
    # 1,000 people whose names all begin with "Johnson": one block far above the limit.
    records = [_record(i, "Johnson " + "".join(rng.choices(letters, k=8))) for i in range(1_000)]
    records += [_record(5_000, "Johnson Qwertzuiop"), _record(5_001, "Johnson Qwertzuiap")]
    assert (5_000, 5_001) in _pairs(find_duplicates(records))
