"""AMI actions built safely: no caller-supplied text can add headers to what we send.

panoramisk writes header values unchanged, so a value holding ``\\r\\n`` would start a new header
(or a whole new action) on Asterisk's side. Every action goes through :func:`build_action`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MAX_VALUE_BYTES = 1000  # Asterisk answers "line too long" a little above 1 KB per line
_HEADER_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

ActionValue = str | int | Sequence[str]


class AmiActionError(ValueError):
    """An action that must not be sent: a bad header name or value."""


def check_value(name: str, value: str) -> str:
    """Return ``value`` if it is safe as an AMI header value, else raise AmiActionError."""
    if any(ch in value for ch in "\r\n\x00"):
        raise AmiActionError(f"AMI header {name!r}: line breaks and NUL are not allowed")
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise AmiActionError(f"AMI header {name!r}: value longer than {MAX_VALUE_BYTES} bytes")
    return value


def build_action(
    name: str, fields: Mapping[str, ActionValue] | None = None
) -> dict[str, str | list[str]]:
    """A checked ``{header: value}`` dict for ``name``; list values become repeated headers."""
    action: dict[str, str | list[str]] = {"Action": check_value("Action", name)}
    for key, value in (fields or {}).items():
        if not key or not set(key) <= _HEADER_NAME_CHARS:
            raise AmiActionError(f"AMI header name {key!r} is not allowed")
        if key.lower() in ("action", "actionid"):
            raise AmiActionError(f"AMI header {key!r} is set by the client")
        if isinstance(value, int):
            action[key] = str(value)
        elif isinstance(value, str):
            action[key] = check_value(key, value)
        else:
            action[key] = [check_value(key, item) for item in value]
    return action


def originate_variables(variables: Mapping[str, str]) -> list[str]:
    """``Variable:`` headers for Originate; names are checked like header names."""
    result = []
    for key, value in variables.items():
        if not key or not set(key) <= _HEADER_NAME_CHARS:
            raise AmiActionError(f"channel variable name {key!r} is not allowed")
        result.append(check_value("Variable", f"{key}={value}"))
    return result
