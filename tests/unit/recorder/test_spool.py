"""The recorder's local journal survives a crash that cut its last line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cti_server.recorder.spool import Spool

WRITES = [{"linkedid": f"1.{i}", "name": "José 张伟", "step": "answer"} for i in range(3)]


def _crashed_spool(path: Path) -> None:
    """Two whole lines, then the third cut mid-write (mid-character, even) by a killed process."""
    whole = "".join(json.dumps(w, ensure_ascii=False) + "\n" for w in WRITES[:2])
    line = (json.dumps(WRITES[2], ensure_ascii=False) + "\n").encode()
    cut = line[: line.index("张".encode()) + 1]  # one byte of a three-byte character
    path.write_bytes(whole.encode() + cut)


def test_a_line_cut_by_a_crash_is_skipped_and_the_rest_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.jsonl"
    _crashed_spool(path)
    with caplog.at_level(logging.WARNING, logger="cti_server.recorder.spool"):
        spool = Spool(path)
    assert spool.entries() == WRITES[:2]
    assert any("unreadable line 3" in r.getMessage() for r in caplog.records)


def test_writes_after_the_crash_are_not_glued_to_the_cut_line(tmp_path: Path) -> None:
    """The write appended after a restart is there after the next restart too."""
    path = tmp_path / "spool.jsonl"
    _crashed_spool(path)
    spool = Spool(path)
    later = {"linkedid": "2.1", "step": "arrival"}
    spool.append(later)
    spool.close()
    assert Spool(path).entries() == [*WRITES[:2], later]


def test_a_whole_spool_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    for write in WRITES:
        spool.append(write)
    spool.close()
    before = path.read_bytes()
    assert Spool(path).entries() == WRITES
    assert path.read_bytes() == before  # an intact journal is not rewritten
