"""Which characters stored text may not hold: one rule for the API, the UI and the recorder.

Text that a person reads later (a name, a note, a summary, a wrap-up, a case's root cause) must
show what it holds. These characters make it show something else, or nothing a person can see:

- control characters: C0 (but tab and line breaks), DEL and C1 (U+0080-U+009F): U+009B is a
  terminal's escape (CSI), U+0085 a line break that some screens draw and others do not;
- bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C): a right-to-left
  override makes ``"invoice\\u202eslx.exe"`` read "invoiceexe.xls";
- zero-width characters (U+200B-U+200D, U+2060, U+FEFF): ``"a\\u200bdmin"`` looks like "admin";
- lone surrogates (U+D800-U+DFFF), which JSON's ``\\ud800`` escape can carry: they are no
  character at all, and neither UTF-8 nor a database encoding can store them.

Input that a person or a program types (the API, the desktop's forms and websocket messages) is
refused with a message that names the character. A caller's name from the telephone network is
never refused (a call must never be lost for its caller ID): :func:`neutralised` stores a space
in place of each such character, which keeps it visible that something was there.

Refusing zero-width joiners also refuses the emoji built with them (a family of three is three
faces joined by U+200D); a contact center's records lose little by that.
"""

from __future__ import annotations

import re

_CLASSES = (
    ("a control character", "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"),
    ("a bidirectional control", "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"),
    ("a zero-width character", "\u200b-\u200d\u2060\ufeff"),
    ("a lone surrogate", "\ud800-\udfff"),
)
_KINDS = [(kind, re.compile(f"[{chars}]")) for kind, chars in _CLASSES]
_UNSAFE = re.compile("[" + "".join(chars for _, chars in _CLASSES) + "]")
_UNSAFE_IN_A_LINE = re.compile("[\t\n\r\u2028\u2029" + "".join(c for _, c in _CLASSES) + "]")
"""What a single-line field refuses too: tab and every line break."""


def unsafe_character(value: str) -> str | None:
    """What the first character that text may not hold is (``"a bidirectional control
    (U+202E)"``), or None when ``value`` holds none."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    char = found.group()
    kind = next(kind for kind, chars in _KINDS if chars.match(char))
    return f"{kind} (U+{ord(char):04X})"


def checked_text(value: str) -> str:
    """``value`` unchanged, or ValueError naming the first character it may not hold (a
    pydantic ``AfterValidator``: the 422 names the field and the character)."""
    unsafe = unsafe_character(value)
    if unsafe is not None:
        raise ValueError(f"{unsafe} is not allowed")
    return value


def neutralised(value: str, *, one_line: bool = False) -> str:
    """``value`` with a space in place of each character that text may not hold (and, for a
    ``one_line`` field, of each tab and line break): the form of text that may not be refused."""
    return (_UNSAFE_IN_A_LINE if one_line else _UNSAFE).sub(" ", value)
