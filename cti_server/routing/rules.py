"""The routing rules in their plainest form, one function each.

The fast core (:mod:`cti_server.routing.core`) and the full-scan reference
(:mod:`cti_server.routing.reference`) both apply these, so they cannot disagree about what a
rule means; the core only organises the search so that it looks at few agents.
"""

from __future__ import annotations

from cti_server.routing.model import Agent, WaitingCall
from cti_server.routing.policy import Policy, Stage

MOVED = "supervisor move to agent"
PREFERRED = "preferred agent within window"
ONLY = "only qualified agent"
LONGEST_IDLE = "tie-break longest idle"
LOWEST_OCCUPANCY = "tie-break lowest occupancy"
AGENT_ID = "tie-break agent id"
HEAD_START = "tier head start"
VALUE = "value score"
PRIORITY_CHANGE = "supervisor priority change"
CALLBACK_YIELDS = "callback yields to live callers"
NO_ANSWER = "ring-no-answer"


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def bonus(call: WaitingCall, policy: Policy) -> float:
    """Virtual seconds a call brings beside its waiting: tier, value, callback, supervisor."""
    p = policy.priority
    extra = policy.head_start(call.tier) + p.value_weight * clamp01(call.value_score)
    if call.callback:
        extra += p.callback_head_start
    return extra + call.priority_adjust


def effective_priority(call: WaitingCall, policy: Policy, now: float) -> float:
    return bonus(call, policy) + policy.priority.aging * (now - call.queued_at)


def call_order(call: WaitingCall, policy: Policy, now: float) -> tuple[float, float, str]:
    """Sort key: highest priority first, then the earlier arrival, then the call id."""
    return (-effective_priority(call, policy, now), call.queued_at, call.id)


def agent_order(agent: Agent) -> tuple[float, float, str]:
    """Sort key among qualified agents: longest idle, then lowest occupancy, then the id."""
    return (agent.idle_since, agent.occupancy, agent.id)


def speaks(agent: Agent, call: WaitingCall) -> bool:
    return call.language is None or call.language in agent.languages


def qualifies(agent: Agent, call: WaitingCall, stage: Stage) -> bool:
    """May ``agent`` (already known to be free) take ``call`` under ``stage``?"""
    return (
        agent.group in stage.groups
        and agent.id not in call.excluded_agents
        and speaks(agent, call)
        and all(agent.skills.get(skill, 0) >= stage.min_level for skill in call.skills)
    )


def level(agent: Agent, call: WaitingCall) -> int | None:
    """The agent's weakest level among the call's skills (None when it needs none)."""
    return min((agent.level(skill) for skill in call.skills), default=None)


def tie_break(winner: Agent, runner_up: Agent | None) -> str:
    """Which rule put ``winner`` before the next-best candidate."""
    if runner_up is None:
        return ONLY
    if winner.idle_since < runner_up.idle_since:
        return LONGEST_IDLE
    if winner.occupancy < runner_up.occupancy:
        return LOWEST_OCCUPANCY
    return AGENT_ID


def eligibility(agent: Agent, call: WaitingCall, policy: Policy, stage: int) -> str:
    """The rule that made ``agent`` eligible: the first stage (up to ``stage``) admitting them,
    so a relaxation is named only when it was needed."""
    for index in range(stage + 1):
        if qualifies(agent, call, policy.eligibility[index]):
            return policy.stage_label(index)
    return policy.stage_label(stage)


def order_reason(call: WaitingCall, overtaken: WaitingCall | None, policy: Policy) -> str | None:
    """Why ``call`` went before ``overtaken``, an older call still waiting (None if none was):
    the term of the priority that gave it the largest lead."""
    if overtaken is None:
        return None
    p = policy.priority

    def callback(c: WaitingCall) -> float:
        return p.callback_head_start if c.callback else 0.0

    leads = {
        HEAD_START: policy.head_start(call.tier) - policy.head_start(overtaken.tier),
        VALUE: p.value_weight * (clamp01(call.value_score) - clamp01(overtaken.value_score)),
        CALLBACK_YIELDS: callback(call) - callback(overtaken),
        PRIORITY_CHANGE: call.priority_adjust - overtaken.priority_adjust,
    }
    return max(leads, key=lambda rule: leads[rule])
