"""Each agent's SIP password, kept only as its digest hash (HA1) in a file readable by its owner.

The password itself is shown once, when made; Asterisk (``password_digest``) and the browser
phone (JsSIP's ``ha1``) both work from the hash, so the password is stored nowhere. Browsers'
SIP libraries speak MD5 digests only, hence MD5.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path

REALM = "asterisk"  # PJSIP's default realm, written into every agent's auth section too
_HA1 = re.compile(r"^[0-9a-f]{32}$")


class SipDigestError(ValueError):
    """The digests file cannot be read as ``{extension: HA1}``."""


def ha1(username: str, secret: str, realm: str = REALM) -> str:
    """The SIP digest hash of a password: what Asterisk and the phone work from instead."""
    return hashlib.md5(f"{username}:{realm}:{secret}".encode(), usedforsecurity=False).hexdigest()


def read_digests(path: Path) -> dict[str, str]:
    """``{extension: HA1}``; no file yet means no agent has a secret of its own."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SipDigestError(f"{path}: not a SIP digests file ({exc})") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and _HA1.match(value)
        for key, value in raw.items()
    ):
        raise SipDigestError(f"{path}: expected {{extension: 32 hex digits}}")
    return dict(raw)


def rotate(path: Path, extension: str) -> str:
    """Give ``extension`` a new random password, store its hash, return the password (once)."""
    secret = secrets.token_urlsafe(18)
    digests = read_digests(path)
    digests[extension] = ha1(extension, secret)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(digests, handle, indent=1, sort_keys=True)
    partial.replace(path)  # never half a file for an Asterisk reloading now
    return secret
