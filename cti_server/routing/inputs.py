"""From the live model to the decision core's inputs: tracker calls and agents, plus what the IVR
and the CRM said, become :class:`WaitingCall` and :class:`Agent`. Pure functions, so the glue is
unit-tested on constructed tracker state.

Where each attribute comes from:

- a call's required skill and language: the IVR's attributes ``skill`` and ``language`` (from
  ``IvrFinished``, or the channel's ``CTI_ATTR_*`` after a restart); none when the IVR set none;
- its tier, value and preferred agent: the CRM (:mod:`crm_core.routing`), else the IVR's ``tier``;
- its wait: the tracker's first queue join, which a ring-out and return keeps (after a restart
  of the CTI, the channel's ``CTI_WAITING_SINCE``, set by the dialplan);
- an agent's id: the extension in their own queue's name ``agent-<extension>``; their skills,
  languages and team: the CRM user with that extension (none known: no skills, no languages);
  their group: their team's name when the policy names that group, else ``agents``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crm_core.routing import AgentProfile, CustomerFacts
from cti_server.events import AgentState, extension_of
from cti_server.routing.model import MAX_LEVEL, Agent, WaitingCall
from cti_server.tracker import model as live

PERSONAL_PREFIX = "agent-"
DEFAULT_GROUP = "agents"


def personal_queue(extension: str) -> str:
    """The queue through which the router rings one agent."""
    return f"{PERSONAL_PREFIX}{extension}"


def routed_extension(agent: live.Agent) -> str | None:
    """The extension of a routed agent: a member of their own queue ``agent-<extension>``."""
    for queue in sorted(agent.queues):
        extension = extension_of(queue) if queue.startswith(PERSONAL_PREFIX) else ""
        if extension.isdigit() and queue == personal_queue(extension):
            return extension
    return None


@dataclass(frozen=True)
class CallContext:
    """What the router knows of a call beyond the tracker: IVR, CRM, supervisors, ring-outs."""

    attributes: Mapping[str, str]
    facts: CustomerFacts | None = None
    priority_adjust: float = 0.0
    move_to_agent: str | None = None
    excluded_agents: frozenset[str] = frozenset()
    waiting_since: float | None = None
    """When the caller first waited, as the channel says (kept across a restart of the CTI)."""


def customer_id(attributes: Mapping[str, str]) -> int | None:
    """The CRM customer the IVR identified (attribute ``customer_id``), if any."""
    raw = attributes.get("customer_id", "").strip()
    return int(raw) if raw.isdigit() and 0 < len(raw) <= 18 else None


def waiting_call(call: live.Call, context: CallContext) -> WaitingCall:
    """A tracker call in a waiting queue as the decision core sees it."""
    attributes = context.attributes
    skill = attributes.get("skill", "").strip()
    language = attributes.get("language", "").strip() or None
    facts = context.facts
    queued = (call.queued_at or call.arrived_at).timestamp()
    if context.waiting_since is not None:
        queued = min(queued, context.waiting_since)
    return WaitingCall(
        id=call.linkedid,
        queued_at=queued,
        tier=facts.tier if facts else attributes.get("tier", "").strip() or "standard",
        value_score=facts.value_score if facts else 0.0,
        skills=frozenset({skill}) if skill else frozenset(),
        language=language,
        preferred_agent=facts.preferred_extension if facts else None,
        priority_adjust=context.priority_adjust,
        move_to_agent=context.move_to_agent,
        excluded_agents=context.excluded_agents,
    )


def router_agent(
    agent: live.Agent,
    extension: str,
    profile: AgentProfile | None,
    *,
    occupancy: float = 0.0,
    state: AgentState | None = None,
    groups: frozenset[str] = frozenset(),
) -> Agent:
    """A tracker agent as the decision core sees it; ``state`` overrides the tracker's (a call
    the router is ringing them with, a pause the router asked for and Asterisk has not shown)."""
    skills = {
        name: level
        for name, level in (profile.skills if profile else {}).items()
        if 1 <= level <= MAX_LEVEL
    }
    team = profile.team if profile else None
    return Agent(
        id=extension,
        skills=skills,
        languages=profile.languages if profile else frozenset(),
        state=state or agent.state,
        idle_since=agent.since.timestamp() if agent.since else 0.0,
        occupancy=min(1.0, max(0.0, occupancy)),
        group=team if team and team in groups else DEFAULT_GROUP,
    )
