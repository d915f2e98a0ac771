"""Recorded AGI sessions (shared data, outside the repository): their environment blocks, as
Asterisk wrote them, for the FastAGI and the classic AGI adapters' tests alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.replay import DATA as SHARED_DATA

AGI_SESSIONS = SHARED_DATA / "agi_sessions"
ENV_LINE = re.compile(r"(?:^|\s)(agi_\w+:.*)$")


def recorded_sessions() -> list[Any]:
    if not AGI_SESSIONS.is_dir():
        reason = f"shared data {AGI_SESSIONS} is absent"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-shared-data")]
    return [pytest.param(p, id=p.name) for p in sorted(AGI_SESSIONS.iterdir()) if p.is_file()]


def env_lines(path: Path) -> list[str]:
    """The ``agi_key: value`` lines of a log, verbatim (one file has no space after the colon)."""
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        found = ENV_LINE.search(raw)
        if found:
            lines.append(found.group(1).rstrip())
    return lines
