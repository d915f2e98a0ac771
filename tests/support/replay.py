"""Replaying recorded AMI traffic (shared data) through the translator and the tracker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cti_server.events import DomainEvent
from cti_server.telephony.ami_events import translate
from cti_server.tracker.tracker import Tracker

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RECORDINGS = DATA / "ami_recordings"


class StepClock:
    """A clock that moves one second per event, so durations in a replay are deterministic."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(seconds=1)


def load(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [m for m in data if isinstance(m, dict)]


def replay(messages: list[dict[str, Any]], node: str = "rec") -> tuple[Tracker, list[DomainEvent]]:
    published: list[DomainEvent] = []
    clock = StepClock()
    tracker = Tracker(published.append, clock=clock)
    for message in messages:
        event = translate(message, node)
        if event is not None:
            tracker.apply(event)
        clock.tick()
    return tracker, published
