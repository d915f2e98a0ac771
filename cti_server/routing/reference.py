"""The decision core written as plainly as possible: every call against every agent.

Too slow for a large centre (calls x agents per decision), and kept for two reasons: it is the
yardstick ``bench/routing.py`` measures the core against, and tests check on random centres
that the core's indexes and heaps never change an answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cti_server.events import AgentState
from cti_server.routing import explain, rules
from cti_server.routing.model import BUSY_STATES, Agent, Assignment, WaitingCall
from cti_server.routing.policy import Policy


def decide_by_full_scan(
    calls: Sequence[WaitingCall], agents: Sequence[Agent], policy: Policy, now: float
) -> list[Assignment]:
    """What :func:`cti_server.routing.core.decide` returns, found by brute force."""
    return list(full_scan_assignments(calls, agents, policy, now))


def full_scan_assignments(
    calls: Sequence[WaitingCall], agents: Sequence[Agent], policy: Policy, now: float
) -> Iterator[Assignment]:
    """:func:`decide_by_full_scan`, one assignment at a time."""
    present = {a.id: a for a in agents}
    taken: set[str] = set()
    want = max(2, policy.explain_candidates)

    def free(agent: Agent) -> bool:
        return agent.state is AgentState.AVAILABLE and agent.id not in taken

    def order(call: WaitingCall) -> tuple[float, float, str]:
        return rules.call_order(call, policy, now)

    for call in sorted((c for c in calls if c.move_to_agent is not None), key=order):
        agent = present.get(call.move_to_agent or "")
        if agent is not None and free(agent):
            taken.add(agent.id)
            yield explain.assign(call, [agent], policy, now, agent_rule=rules.MOVED)

    ranked = sorted((c for c in calls if c.move_to_agent is None), key=order)
    for position, call in enumerate(ranked):
        behind = [c for c in ranked[position + 1 :] if c.queued_at < call.queued_at]
        overtaken = min(behind, key=lambda c: (c.queued_at, c.id), default=None)
        waited = now - call.queued_at
        preferred = present.get(call.preferred_agent or "")
        if (
            preferred is not None
            and waited < policy.preferred_agent.window
            and preferred.id not in call.excluded_agents
            and rules.speaks(preferred, call)
        ):
            if free(preferred):
                taken.add(preferred.id)
                yield explain.assign(
                    call, [preferred], policy, now, agent_rule=rules.PREFERRED, overtaken=overtaken
                )
                continue
            if preferred.id in taken or preferred.state in BUSY_STATES:
                continue
        stage = policy.eligibility[policy.stage_at(waited)]
        qualified = sorted(
            (a for a in agents if free(a) and rules.qualifies(a, call, stage)),
            key=rules.agent_order,
        )
        if not qualified:
            continue
        taken.add(qualified[0].id)
        runner_up = qualified[1] if len(qualified) > 1 else None
        yield explain.assign(
            call,
            qualified[:want],
            policy,
            now,
            agent_rule=rules.tie_break(qualified[0], runner_up),
            overtaken=overtaken,
            more=len(qualified) > want,
        )
