"""Domain events: the vocabulary the parts of the server speak to each other.

Small frozen dataclasses. Each has a ``version`` so that a consumer in another process can tell
an old shape from a new one when events cross Redis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    version: ClassVar[int] = 1
    at: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["at"] = self.at.isoformat()
        return {"type": type(self).__name__, "version": self.version, "data": data}


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiLinkChanged(DomainEvent):
    """The CTI server gained or lost its AMI link to an Asterisk node."""

    node: str
    connected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallArrived(DomainEvent):
    """A customer call reached the inbound context and asked the CTI server what to do."""

    node: str
    linkedid: str
    uniqueid: str
    channel: str
    caller_number: str
    caller_name: str
    dialed: str


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.__name__: cls for cls in (AmiLinkChanged, CallArrived)
}


class UnknownEvent(ValueError):
    """A serialized event of a type or version this process does not know."""


def event_from_dict(payload: dict[str, Any]) -> DomainEvent:
    """The inverse of :meth:`DomainEvent.to_dict`, for events that crossed a process boundary."""
    cls = EVENT_TYPES.get(str(payload.get("type")))
    if cls is None or payload.get("version") != cls.version:
        raise UnknownEvent(f"unknown event {payload.get('type')!r} v{payload.get('version')}")
    data = dict(payload["data"])
    data["at"] = datetime.fromisoformat(data["at"])
    return cls(**data)
