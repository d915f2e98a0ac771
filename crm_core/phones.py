"""Caller-ID normalization: one E.164 form for storing numbers and finding customers by them.

Numbers are stored in E.164 (``+8613800138000``) so that a customer is found whichever way
Asterisk, a SIP trunk or an agent spelled the number. Storing is strict (:func:`to_e164`);
finding is lenient (:func:`lookup_candidates`) because caller IDs arrive in many local forms.
Trunk prefixes and international prefixes come from phonenumbers' metadata, never hard-coded,
because they differ by region ("0" and "00" in CN/GB/DE, "1" and "011" in the US).
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

__all__ = ["PhoneNumberError", "display", "is_withheld", "lookup_candidates", "to_e164"]

# Caller IDs can be whole SIP header values ('"Bob" <sip:+86...@carrier.example;user=phone>'),
# so the raw text may be longer than the number inside it; both are capped before any parsing
# so that hostile input (megabyte strings) costs nothing.
_MAX_RAW = 256
_MAX_NUMBER = 64

# The number inside a SIP or tel URI: sip:USER@host, sips:USER@host, tel:NUMBER;params.
_URI = re.compile(r"\b(sips?|tel):([^>]*)", re.IGNORECASE)

_PLUS_SIGNS = ("+", "\uff0b")  # phonenumbers accepts the full-width plus as well

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code or default region",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


class PhoneNumberError(ValueError):
    """A number that cannot be stored (message says why)."""


def is_withheld(raw: str | None) -> bool:
    """Whether a caller ID hides the number rather than giving one.

    Asterisk and trunks spell a hidden number in many ways ("anonymous", "Restricted",
    "<unknown>", "0", "sip:anonymous@anonymous.invalid", empty), so rather than list them,
    anything whose number part has no digit other than 0 counts as withheld.
    """
    if raw is None:
        return True
    digits = phonenumbers.normalize_digits_only(_number_part(raw[:_MAX_RAW]))
    return digits.strip("0") == ""


def to_e164(raw: str, default_region: str) -> str:
    """The E.164 form of a number a user typed, for storing; strict, so bad data never lands.

    Accepts the usual separators, "+" or the region's international prefix, "tel:" URIs and
    national numbers with the region's trunk prefix. Raises :class:`PhoneNumberError` for
    withheld, unparseable or impossible (wrong length) numbers, for numbers only dialable
    locally (phonenumbers calls "555 2671" possible in the US, but it lacks its area code)
    and for numbers with an extension, which E.164 cannot hold.
    """
    number = _parse(_number_text(raw), default_region.upper())
    if number.extension:
        raise PhoneNumberError("extensions cannot be stored with a phone number")
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise PhoneNumberError("only dialable locally: the area code is missing")
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        words = phonenumbers.ValidationResult.to_string(reason).lower().replace("_", " ")
        raise PhoneNumberError(f"not a possible phone number ({words})")
    return _e164(number)


def lookup_candidates(raw: str | None, default_region: str) -> list[str]:
    """Every plausible E.164 reading of a caller ID, most likely first; [] if none.

    The first candidate is phonenumbers' own reading in the default region, the one
    :func:`to_e164` stores, so a stored number is always found by the first candidate.
    Two more readings are offered when they are valid numbers: an international number that
    lost its "+" ("447911123456"), and a national number that merely starts with the country
    code's digits. Outside-line digits ("9...") and other prefixes are not guessed.
    """
    if raw is None:
        return []
    try:
        text = _number_text(raw)
    except PhoneNumberError:
        return []
    region = default_region.upper()
    primary = _try_parse(text, region)
    found = [primary] if primary is not None and _storable(primary) else []
    found += [n for n in _other_readings(text, region, primary) if phonenumbers.is_valid_number(n)]
    return list(dict.fromkeys(_e164(n) for n in found))


def display(e164: str, region: str) -> str:
    """A stored number as an agent in ``region`` would write it: national at home, else "+".

    Never raises: a screen pop must render even if a stored value is odd, so anything that
    does not parse is returned unchanged.
    """
    region = region.upper()
    number = _try_parse(e164, region) if len(e164) <= _MAX_NUMBER else None
    if number is None:
        return e164
    home = number.country_code == phonenumbers.country_code_for_region(region)
    style = PhoneNumberFormat.NATIONAL if home else PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


def _other_readings(text: str, region: str, primary: PhoneNumber | None) -> list[PhoneNumber]:
    """Readings of a "+"-less caller ID besides phonenumbers' own, when that one is in doubt.

    Doubt means it failed, is not a valid number, or the digits start with the region's
    country code (phonenumbers then picks one of "country code" and "national" by itself).
    """
    if text.startswith(_PLUS_SIGNS):
        return []
    digits = phonenumbers.normalize_digits_only(text)
    country_code = phonenumbers.country_code_for_region(region)
    own_code = country_code != 0 and digits.startswith(str(country_code))
    if not own_code and primary is not None and phonenumbers.is_valid_number(primary):
        return []
    readings = [_try_parse("+" + digits, region)]
    if own_code:
        readings.append(PhoneNumber(country_code=country_code, national_number=int(digits)))
    return [n for n in readings if n is not None]


def _number_part(text: str) -> str:
    """The user part of a SIP URI or the number of a tel URI; other text is returned as is."""
    match = _URI.search(text)
    if match is None:
        return text.strip()
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme != "tel":
        user, at, _host = rest.partition("@")
        rest = user if at else ""  # "sip:host" names a host, not a number
    return rest.split(";", 1)[0].strip()


def _number_text(raw: str) -> str:
    """The number part of ``raw``, checked to be small, clean and not withheld."""
    if len(raw) > _MAX_RAW:
        raise PhoneNumberError("too long to be a phone number")
    if any(unicodedata.category(char) == "Cc" for char in raw.strip()):
        raise PhoneNumberError("contains control characters")
    if is_withheld(raw):
        raise PhoneNumberError("the number is withheld or empty")
    text = _number_part(raw)
    if len(text) > _MAX_NUMBER:
        raise PhoneNumberError("too long to be a phone number")
    return text


def _parse(text: str, region: str) -> PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneNumberError(_PARSE_ERRORS.get(exc.error_type, "not a phone number")) from None


def _try_parse(text: str, region: str) -> PhoneNumber | None:
    try:
        return _parse(text, region)
    except PhoneNumberError:
        return None


def _storable(number: PhoneNumber) -> bool:
    """What :func:`to_e164` would store: a full number, not one only dialable locally."""
    reason = phonenumbers.is_possible_number_with_reason(number)
    return reason == phonenumbers.ValidationResult.IS_POSSIBLE


def _e164(number: PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
