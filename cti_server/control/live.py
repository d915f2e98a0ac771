"""A read-only view of the live model (calls, legs, agents, queues), as the UI reads it.

The tracker's dataclasses satisfy these protocols structurally; the UI never writes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime
from typing import Any, Protocol


class LegView(Protocol):
    """One channel of a call."""

    @property
    def channel(self) -> str: ...

    @property
    def state(self) -> str: ...  # Asterisk's channel state: "Up" once answered


class CallView(Protocol):
    @property
    def node(self) -> str: ...

    @property
    def linkedid(self) -> str: ...

    @property
    def caller_number(self) -> str: ...

    @property
    def caller_name(self) -> str: ...

    @property
    def state(self) -> str: ...  # a CallState (cti_server.events)

    @property
    def queue(self) -> str: ...

    @property
    def agent(self) -> str: ...

    @property
    def legs(self) -> Mapping[str, LegView]: ...  # by uniqueid

    @property
    def waiting_leg(self) -> str: ...  # uniqueid of the channel waiting in the queue

    def live_legs(self) -> Sequence[LegView]: ...


class AgentView(Protocol):
    """A queue member, by node and interface."""

    @property
    def node(self) -> str: ...

    @property
    def interface(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...  # an AgentState (cti_server.events)

    @property
    def reason(self) -> str: ...

    @property
    def linkedid(self) -> str: ...

    @property
    def queues(self) -> Set[str]: ...


class QueueView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def waiting(self) -> Mapping[str, datetime]: ...  # linkedid -> when it began to wait


class LiveView(Protocol):
    """The live model, read."""

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def call(self, node: str, linkedid: str) -> CallView | None: ...

    def ended_call(self, node: str, linkedid: str) -> CallView | None: ...

    def agent(self, node: str, interface: str) -> AgentView | None: ...

    def all_queues(self, node: str | None = None) -> Sequence[QueueView]: ...

    def snapshot(self) -> dict[str, Any]: ...  # what a wallboard shows, JSON-ready
