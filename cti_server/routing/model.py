"""What the router decides about: waiting calls, agents, and the assignments it makes.

Plain frozen dataclasses with no behaviour beyond checking their own values, so that the
decision core can be fed by the live tracker, by a test, or by the what-if simulator alike.
Times are seconds on one clock chosen by the caller (``time.time()``, a simulated clock): the
core only ever subtracts them from ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cti_server.events import AgentState

MAX_LEVEL = 10

BUSY_STATES = frozenset({AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP})
"""States an agent leaves by themselves soon: a call may wait for its preferred agent in them,
but not for one who is paused or logged out."""


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as the router sees them; only ``available`` agents are assigned calls."""

    id: str
    skills: Mapping[str, int] = field(default_factory=dict)
    """Skill name to level, 1 (novice) to 10 (expert); a skill not listed is level 0."""
    languages: frozenset[str] = frozenset()
    state: AgentState = AgentState.AVAILABLE
    idle_since: float = 0.0
    """When the agent last became free: the longest idle wins a tie."""
    occupancy: float = 0.0
    """Share of logged-in time spent on calls lately, 0..1: the lowest wins the next tie."""
    group: str = "agents"
    """The agent's group: later relaxation stages may open the call to overflow groups."""

    def __post_init__(self) -> None:
        bad = {name: level for name, level in self.skills.items() if not 1 <= level <= MAX_LEVEL}
        if bad:
            raise ValueError(f"agent {self.id!r}: skill levels must be 1..{MAX_LEVEL}, got {bad}")
        if not 0.0 <= self.occupancy <= 1.0:
            raise ValueError(f"agent {self.id!r}: occupancy must be 0..1, got {self.occupancy}")

    def level(self, skill: str) -> int:
        return self.skills.get(skill, 0)


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """A call waiting for an agent, with what the CRM, the IVR and supervisors said about it."""

    id: str
    queued_at: float
    """When the call joined the queue; a call put back after ring-no-answer keeps it."""
    tier: str = "standard"
    """The customer's tier from the CRM value model; unknown tiers count as the policy's
    default tier."""
    value_score: float = 0.0
    """The customer's value, normalised to 0..1 by whoever builds the call (clamped here)."""
    skills: frozenset[str] = frozenset()
    """Skills the IVR found the call needs (e.g. ``{"billing"}``)."""
    language: str | None = None
    preferred_agent: str | None = None
    """The agent who last served this customer well (computed from the CRM elsewhere)."""
    callback: bool = False
    """A callback the centre owes, not a caller holding the line."""
    priority_adjust: float = 0.0
    """A supervisor's priority change, in virtual seconds (negative moves the call back)."""
    move_to_agent: str | None = None
    """A supervisor's "move to agent": only that agent may take the call, whatever the rules."""
    excluded_agents: frozenset[str] = frozenset()
    """Agents who let this call ring out: never offered it again."""

    def __post_init__(self) -> None:
        for name in ("queued_at", "value_score", "priority_adjust"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"call {self.id!r}: {name} must be finite")


@dataclass(frozen=True, slots=True)
class Assignment:
    """Ring ``agent_id`` for ``call_id``; ``explanation`` is JSON, stored on the interaction."""

    call_id: str
    agent_id: str
    at: float
    rule: str
    """The rule that picked this agent (e.g. ``"tie-break longest idle"``)."""
    explanation: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AgentChange:
    """A state the router asks telephony to put an agent in, and why."""

    agent_id: str
    state: AgentState
    reason: str


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """What a ring-no-answer leads to: the agent's change and the call, back in the queue."""

    agent: AgentChange
    call: WaitingCall
    explanation: dict[str, Any]
