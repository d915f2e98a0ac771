"""For the transcription service's tests: a listener that keeps the taps the service expects (the
test plays Asterisk's part for them), and a call answered with both its channels to tap."""

from __future__ import annotations

from datetime import UTC, datetime

from cti_server.events import CallAnswered
from cti_server.speech.tap import TapStream


class TapListener:
    """Stands in for the AudioSocket listener: the streams it was told to expect, in order."""

    address = "127.0.0.1:9"

    def __init__(self) -> None:
        self.streams: list[TapStream] = []

    def expect_stream(self, stream: TapStream, peer: str | None = None) -> bool:
        self.streams.append(stream)
        return True

    def forget_stream(self, stream: TapStream) -> None:
        self.streams.remove(stream)


def answered(linkedid: str) -> CallAnswered:
    """The agent 1001 answered the call ``linkedid`` from the support queue."""
    return CallAnswered(
        node="n1",
        linkedid=linkedid,
        queue="support",
        agent="1001",
        waited_seconds=3.0,
        caller_channel=f"PJSIP/trunk-{linkedid}",
        agent_channel=f"PJSIP/1001-{linkedid}",
        at=datetime.now(UTC),
    )
