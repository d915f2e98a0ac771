"""Recorded AMI traffic keeps every message and header, and no secret of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from panoramisk.message import Message

from tests.support.ami_record import HIDDEN, RECORD_ENV, as_recorded, record_ami

SECRET = "s3cret-value"


def _messages() -> list[Message]:
    return [
        Message({"Event": "Newchannel", "Channel": "PJSIP/1001-00000001", "Uniqueid": "1.1"}),
        Message(
            {
                "Event": "AGIExecEnd",
                "Command": "GET VARIABLE CTI_AGI_KEY",
                "Result": f"200 result=1 ({SECRET})",
                "ChanVariable": ["a=1", f"b={SECRET}"],
            }
        ),
    ]


def test_every_message_is_kept_in_order_with_secrets_hidden() -> None:
    recorded = as_recorded(_messages(), [SECRET, ""])
    assert [m["Event"] for m in recorded] == ["Newchannel", "AGIExecEnd"]
    assert recorded[0] == {
        "Event": "Newchannel",
        "Channel": "PJSIP/1001-00000001",
        "Uniqueid": "1.1",
        "content": "",
    }
    assert recorded[1]["Result"] == f"200 result=1 ({HIDDEN})"
    assert recorded[1]["ChanVariable"] == ["a=1", f"b={HIDDEN}"]
    assert SECRET not in json.dumps(recorded)


def test_nothing_is_written_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data" / "call.json"
    monkeypatch.delenv(RECORD_ENV, raising=False)
    assert record_ami(_messages(), path, [SECRET]) is None
    assert not path.exists()

    monkeypatch.setenv(RECORD_ENV, "1")
    assert record_ami(_messages(), path, [SECRET]) == path
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == as_recorded(_messages(), [SECRET])
