"""Webhook signatures, as Stripe signs them: ``X-CTI-Signature: t=<unix time>,v1=<hex>``.

``v1`` is HMAC-SHA256, keyed with the subscription's secret, of ``f"{t}.{body}"``: the receiver
recomputes it over the raw body it got, compares in constant time, and refuses a ``t`` too far
from its own clock (a replayed request). The time is signed anew on every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-CTI-Signature"
TOLERANCE_SECONDS = 300


class BadSignature(ValueError):
    """The header is malformed, too old, or does not match the body."""


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` sent now (or at ``timestamp``)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={_digest(secret, stamp, body)}"


def verify(secret: bytes, header: str, body: bytes, tolerance: float = TOLERANCE_SECONDS) -> int:
    """What a receiver runs: the signed time when ``header`` is right for ``body``, else raise."""
    parts = dict(item.partition("=")[::2] for item in header.split(",") if "=" in item)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        raise BadSignature("no timestamp") from None
    if abs(time.time() - stamp) > tolerance:
        raise BadSignature("timestamp outside the tolerance")
    if not hmac.compare_digest(parts.get("v1", ""), _digest(secret, stamp, body)):
        raise BadSignature("signature does not match")
    return stamp


def _digest(secret: bytes, stamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
