"""Stand-ins for what the server talks to, for unit tests that run without a PBX.

One fake AMI link serves every test that only needs to see which actions a part sends (the
router's, the transcription's taps, the resync's questions): it records each action and answers
as Asterisk does when it says yes, or with the canned reply given for that action's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from panoramisk.message import Message

from cti_server.telephony.ami_client import AmiStatus

Reply: TypeAlias = Message | list[Message]  # panoramisk is untyped: Any to mypy


def accepted() -> Message:
    """Asterisk's answer to an action it carried out."""
    return Message({"Response": "Success"})


@dataclass
class FakeAmiLink:
    """An AMI link (the part of ``AmiClient`` the server's parts call) that records the actions
    sent, in order, and answers each from ``replies`` by action name, else with a success."""

    node: str = "pbx1"
    replies: Mapping[str, Reply] = field(default_factory=dict)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    connected: bool = True
    status: AmiStatus = field(init=False)

    def __post_init__(self) -> None:
        self.status = AmiStatus(node=self.node)

    async def send_action(
        self, name: str, fields: Mapping[str, Any] | None = None, timeout: float = 10.0, **_: Any
    ) -> Reply:
        self.sent.append((name, dict(fields or {})))
        if name in self.replies:
            return self.replies[name]
        return accepted()

    def names(self) -> list[str]:
        """The names of the actions sent, in order."""
        return [name for name, _ in self.sent]

    def actions(self, name: str) -> list[dict[str, Any]]:
        """The fields of each action of that name, in the order sent."""
        return [fields for action, fields in self.sent if action == name]


class ManualClock:
    """A clock that stands still until the test moves it (``advance``), for the tracker (a
    ``datetime``) and the router (``timestamp``) alike."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
