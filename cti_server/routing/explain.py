"""Explanations as plain JSON dicts: stored on the CRM interaction (``routing.decision``) and
shown to supervisors, so they name rules in words and carry the figures that decided."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cti_server.routing import rules
from cti_server.routing.model import Agent, Assignment, WaitingCall
from cti_server.routing.policy import Policy

VERSION = 1


def _r(value: float) -> float:
    return round(value, 3)


def priority_terms(call: WaitingCall, policy: Policy, now: float) -> dict[str, Any]:
    p = policy.priority
    tier = call.tier if call.tier in p.tiers else p.default_tier
    return {
        "effective": _r(rules.effective_priority(call, policy, now)),
        "waited_s": _r(now - call.queued_at),
        "tier": tier,
        "head_start": _r(policy.head_start(tier)),
        "value": _r(p.value_weight * rules.clamp01(call.value_score)),
        "callback": _r(p.callback_head_start if call.callback else 0.0),
        "adjust": _r(call.priority_adjust),
    }


def candidate(agent: Agent, call: WaitingCall, now: float) -> dict[str, Any]:
    return {
        "agent": agent.id,
        "idle_s": _r(now - agent.idle_since),
        "occupancy": _r(agent.occupancy),
        "level": rules.level(agent, call),
        "group": agent.group,
    }


def assign(
    call: WaitingCall,
    candidates: Sequence[Agent],
    policy: Policy,
    now: float,
    *,
    agent_rule: str,
    overtaken: WaitingCall | None = None,
    more: bool = False,
) -> Assignment:
    """The assignment of ``call`` to ``candidates[0]`` with its explanation.

    ``candidates`` are the best qualified agents in tie-break order (the winner first);
    ``more`` says whether others qualified too. ``rule`` is the most specific rule that
    decided: a supervisor's move, the preferred agent, a relaxation the winner needed, else
    the tie-break; ``rules`` lists every rule that played a part, in order.
    """
    winner = candidates[0]
    stage = policy.stage_at(now - call.queued_at)
    order = rules.order_reason(call, overtaken, policy)
    named: list[str] = [order] if order else []
    rule = agent_rule
    if agent_rule not in (rules.MOVED, rules.PREFERRED):
        eligible = rules.eligibility(winner, call, policy, stage)
        named.append(eligible)
        if eligible != policy.stage_label(0):
            rule = eligible
    named.append(agent_rule)
    shown = candidates[: policy.explain_candidates]
    explanation: dict[str, Any] = {
        "version": VERSION,
        "policy": policy.name,
        "at": _r(now),
        "call": call.id,
        "agent": winner.id,
        "rule": rule,
        "rules": named,
        "priority": priority_terms(call, policy, now),
        "overtook": overtaken.id if overtaken else None,
        "stage": {"index": stage, "label": policy.stage_label(stage)},
        "candidates": [candidate(a, call, now) for a in shown],
        "more_candidates": more or len(candidates) > len(shown),
    }
    return Assignment(call.id, winner.id, now, rule, explanation)
