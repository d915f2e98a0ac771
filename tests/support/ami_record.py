"""Recording a real Asterisk's AMI traffic into ``tests/data/`` for the replay tests.

Normal runs never rewrite the committed recordings: a scenario writes its file only when the
environment says ``RECORD_AMI=1`` (not a ``CTI_*`` name: the test session clears those).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from panoramisk.message import Message

RECORD_ENV = "RECORD_AMI"
DATA = Path(__file__).resolve().parents[1] / "data"
HIDDEN = "<secret>"


def recording_on() -> bool:
    return os.environ.get(RECORD_ENV) == "1"


def as_recorded(messages: Iterable[Message], secrets: Iterable[str]) -> list[dict[str, Any]]:
    """Every message as a plain dict, in the order received; any secret value hidden."""
    hidden = [s for s in secrets if s]

    def _clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in hidden:
                value = value.replace(secret, HIDDEN)
            return value
        if isinstance(value, list):
            return [_clean(v) for v in value]
        return value

    return [{str(k): _clean(v) for k, v in message.items()} for message in messages]


def record_ami(messages: Iterable[Message], path: Path, secrets: Iterable[str]) -> Path | None:
    """Write ``messages`` to ``path`` (JSON, one dict per message) when recording is on."""
    if not recording_on():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(as_recorded(messages, secrets), ensure_ascii=False, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    return path
