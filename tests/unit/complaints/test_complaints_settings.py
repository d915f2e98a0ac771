"""The ``[complaints]`` settings reach the server's detector: the operating point a manager
sets and the choice of model."""

from __future__ import annotations

from pathlib import Path

from cti_server.app import COMPLAINTS, build_app
from cti_server.complaints.detector import ComplaintDetector
from cti_server.complaints.operating_point import OperatingPoint
from cti_server.config import (
    AmiSettings,
    ComplaintSettings,
    DatabaseSettings,
    RecorderSettings,
    Settings,
)


def _server_detector(tmp_path: Path, complaints: ComplaintSettings) -> ComplaintDetector:
    settings = Settings(
        ami=AmiSettings(secret="complaints-test"),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}"),
        recorder=RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
        complaints=complaints,
    )
    return build_app(settings)[COMPLAINTS].detector


def test_the_server_flags_calls_at_the_managers_operating_point(tmp_path: Path) -> None:
    chosen = ComplaintSettings(expected_rate=0.2, miss_cost=10, embeddings="off")
    detector = _server_detector(tmp_path, chosen)
    assert detector.operating_point == OperatingPoint(0.2, 10.0, 1.0)
    assert not detector.uses_embeddings("en")


def test_by_default_one_call_in_twenty_and_a_miss_five_times_a_false_alarm(tmp_path: Path) -> None:
    point = _server_detector(tmp_path, ComplaintSettings()).operating_point
    assert point == OperatingPoint(0.05, 5.0, 1.0)
    assert point.threshold == 1 / 6
