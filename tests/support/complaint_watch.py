"""A complaint watch on its own bus, and the ended calls it judges, for the tests of the watch
and of the call facts it weighs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from cti_server.bus import MemoryBus
from cti_server.complaints.detector import ComplaintDetector
from cti_server.complaints.watch import ComplaintWatch
from cti_server.events import CallEnded, ComplaintDetected, DomainEvent, HungUpBy
from tests.support.domain_events import ended

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DETECTOR = ComplaintDetector(embeddings=None)  # as the server has it, at the default point


def call_ended(linkedid: str, *, hung_up_by: HungUpBy = "agent") -> CallEnded:
    """A call answered after 12 s in the queue (22 s after it arrived), ended at 80 s."""
    return ended(
        linkedid,
        "sim-1901",
        caller="+8613900000001",
        caller_name="",
        hung_up_by=hung_up_by,
        arrived_at=T0,
        queued_after=10,
        offered_after=20,
        answered_after=22,
        ended_after=80,
    )


class Watched:
    """A watch on its own bus, its findings and the calls the CRM says were repeats."""

    def __init__(
        self,
        repeats: set[str],
        survey_wait: float = 10.0,
        detector: ComplaintDetector = DETECTOR,
    ) -> None:
        self.bus = MemoryBus()
        self.found: list[ComplaintDetected] = []
        self.asked: list[str] = []
        self.bus.listen((ComplaintDetected,), self._found)

        async def repeat_call(node: str, linkedid: str) -> bool:
            self.asked.append(linkedid)
            return linkedid in repeats

        self.watch = ComplaintWatch(
            self.bus,
            detector,
            repeat_call,
            transcript_expected=lambda _ended: False,
            survey_wait=survey_wait,
        )
        self.watch.attach()

    def _found(self, event: DomainEvent) -> None:
        if isinstance(event, ComplaintDetected):
            self.found.append(event)

    def judged(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def _check() -> bool:
            return self.watch.judged >= count

        return _check
