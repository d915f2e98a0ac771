"""The few services the UI needs from speech, complaints and routing, and the settings it reads."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from cti_server.events import Utterance


class Redaction(Protocol):
    """A call's utterances (both speakers, in time order) redacted together: one text each.

    ``still_speaking``: speakers whose last utterance may go on (live text)."""

    def __call__(self, said: Sequence[Utterance], still_speaking: Collection[str]) -> list[str]: ...


class RecordingNames(Protocol):
    """The file names of a call's recording in Asterisk's monitor directory, the mix first."""

    def __call__(self, linkedid: str) -> Sequence[str]: ...


class SupervisorRouting(Protocol):
    """The router's supervisor controls, called in-process. ``move`` and ``change_priority``
    raise ``ControlError`` for a call that does not wait or an agent not signed in for
    routing; each returns the call's view (its priority terms)."""

    def snapshot(self) -> dict[str, Any]: ...

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]: ...

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]: ...

    def agent_of_queue(self, queue: str) -> str | None:
        """The extension whose own queue this is (the router rings agents through such queues),
        None for a queue customers call."""
        ...


class UiOptions(Protocol):
    """The settings the UI reads (``cti_server.config.UiSettings`` satisfies it)."""

    @property
    def idle_minutes(self) -> float: ...

    @property
    def cookie_secure(self) -> bool: ...

    @property
    def allowed_origins(self) -> tuple[str, ...]: ...

    @property
    def dispositions(self) -> tuple[str, ...]: ...

    @property
    def long_wait_seconds(self) -> int: ...

    @property
    def time_zone(self) -> str: ...
