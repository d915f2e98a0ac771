"""What a listening heard: the vocabulary speech and the IVR share.

It lives here, below the IVR, because speech produces it (a word recognised, a key pressed
while listening) and the IVR only reads it: speech must not depend on the IVR.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heard:
    """A menu choice: ``key`` (``""``: nothing), and the ``word`` when it was spoken."""

    key: str
    word: str = ""
