"""Ring-no-answer: the agent who let an offered call ring out goes not-ready (paused, with a
reason), and the call goes back to the queue, keeping its place, never offered to them again."""

from __future__ import annotations

from dataclasses import replace

from cti_server.events import AgentState
from cti_server.routing import rules
from cti_server.routing.model import AgentChange, Assignment, NoAnswer, WaitingCall
from cti_server.routing.policy import Policy


def ring_no_answer(
    call: WaitingCall, assignment: Assignment, policy: Policy, now: float
) -> NoAnswer:
    """What to do once ``assignment`` of ``call`` has rung ``policy.ring_no_answer.timeout``
    seconds without an answer (raises ValueError when asked earlier, or about another call).

    The call keeps its arrival time, so it keeps its priority; a supervisor's move to that agent
    is dropped (the call would otherwise wait for an agent who is now not ready).
    """
    if assignment.call_id != call.id:
        raise ValueError(f"assignment of call {assignment.call_id!r} is not for {call.id!r}")
    rang = now - assignment.at
    timeout = policy.ring_no_answer.timeout
    if rang < timeout:
        raise ValueError(f"call {call.id!r} has rung {rang:g} s, the timeout is {timeout:g} s")
    agent = assignment.agent_id
    back = replace(
        call,
        excluded_agents=call.excluded_agents | {agent},
        move_to_agent=None if call.move_to_agent == agent else call.move_to_agent,
    )
    reason = policy.ring_no_answer.reason
    explanation = {
        "rule": rules.NO_ANSWER,
        "at": round(now, 3),
        "call": call.id,
        "agent": agent,
        "rang_s": round(rang, 3),
        "timeout_s": timeout,
        "agent_state": AgentState.PAUSED.value,
        "reason": reason,
        "excluded_agents": sorted(back.excluded_agents),
    }
    return NoAnswer(AgentChange(agent, AgentState.PAUSED, reason), back, explanation)
