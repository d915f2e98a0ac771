"""The decision core: which available agent takes which waiting call, and why.

A pure function of (waiting calls, agents, policy, now): no I/O, no clock, no state between
calls, so the tests, the benchmark and the what-if simulator run the same code; the live router
keeps the same search's indexes between decisions (:mod:`cti_server.routing.live_index`) and
runs the same loop (:func:`serve`) over them.

How it stays fast with a thousand agents and a thousand calls: calls come off a heap in
priority order (only as many as there are free agents to give them); free agents are sorted
once in tie-break order and indexed by (group, skill) and (group, language)
(:mod:`cti_server.routing.free_agents`). Agents already given a call are skipped lazily, and
once no free agent meets a kind of call (skills, language, stage), later calls of that kind
are passed over without a search.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence

from cti_server.routing import explain, rules
from cti_server.routing.free_agents import FreeAgents, Picking
from cti_server.routing.model import BUSY_STATES, Agent, Assignment, WaitingCall
from cti_server.routing.policy import Policy

Lookup = Callable[[str], Agent | None]
"""Any agent present by id, free or not (a preferred agent may be waited for while busy)."""
Overtaken = Callable[[WaitingCall], WaitingCall | None]
"""The longest-waiting call ranked below the given one, if it arrived earlier."""


def decide(
    calls: Sequence[WaitingCall], agents: Sequence[Agent], policy: Policy, now: float
) -> list[Assignment]:
    """Every assignment the policy makes now, best call first, each with its explanation."""
    return list(assignments(calls, agents, policy, now))


def assignments(
    calls: Sequence[WaitingCall], agents: Sequence[Agent], policy: Policy, now: float
) -> Iterator[Assignment]:
    """:func:`decide`, one assignment at a time (a caller may stop early)."""
    picking = Picking(FreeAgents(agents))
    if not picking.left or not calls:
        return
    present: dict[str, Agent] = {}

    def lookup(agent_id: str) -> Agent | None:
        if not present:
            present.update((a.id, a) for a in agents)
        return present.get(agent_id)

    yield from serve_moved((c for c in calls if c.move_to_agent is not None), picking, policy, now)
    heap = _priority_heap(calls, policy, now)
    oldest = [(c.queued_at, c.id, i) for i, c in enumerate(calls) if c.move_to_agent is None]
    heapq.heapify(oldest)
    seen: set[int] = set()

    def ranked() -> Iterator[WaitingCall]:
        while heap:
            index = heapq.heappop(heap)[3]
            seen.add(index)
            yield calls[index]

    def overtaken(call: WaitingCall) -> WaitingCall | None:
        return _oldest_behind(oldest, seen, calls, call)

    yield from serve(picking, policy, now, ranked=ranked(), overtaken=overtaken, lookup=lookup)


def serve_moved(
    moved: Iterable[WaitingCall], picking: Picking, policy: Policy, now: float
) -> Iterator[Assignment]:
    """Calls a supervisor moved to an agent, best first: a move beats every rule, and a busy
    agent is waited for."""
    for call in sorted(moved, key=lambda c: rules.call_order(c, policy, now)):
        agent = picking.get(call.move_to_agent or "")
        if agent is not None:
            picking.take(agent)
            yield explain.assign(call, [agent], policy, now, agent_rule=rules.MOVED)


def serve(
    picking: Picking,
    policy: Policy,
    now: float,
    *,
    ranked: Iterator[WaitingCall],
    overtaken: Overtaken,
    lookup: Lookup,
) -> Iterator[Assignment]:
    """The calls not moved by a supervisor, in priority order (``ranked`` may leave out calls
    no free agent could take), each given its preferred agent or the best qualified one."""
    want = max(2, policy.explain_candidates)  # the runner-up names the tie-break
    hopeless: set[tuple[frozenset[str], str | None, int]] = set()  # needs no free agent meets
    window = policy.preferred_agent.window
    while picking.left:
        call = next(ranked, None)
        if call is None:
            return
        waited = now - call.queued_at
        if call.preferred_agent is not None and waited < window:
            match _preferred(call, lookup(call.preferred_agent), picking):
                case Agent() as agent:
                    picking.take(agent)
                    yield explain.assign(
                        call,
                        [agent],
                        policy,
                        now,
                        agent_rule=rules.PREFERRED,
                        overtaken=overtaken(call),
                    )
                    continue
                case "wait":
                    continue
        stage = policy.stage_at(waited)
        shape = (call.skills, call.language, stage)
        if shape in hopeless:
            continue
        found, more = picking.best(call, policy.eligibility[stage], want)
        if not found:
            if not call.excluded_agents:
                hopeless.add(shape)  # agents are only ever taken: no later call of it will do
            continue
        picking.take(found[0])
        yield explain.assign(
            call,
            found,
            policy,
            now,
            agent_rule=rules.tie_break(found[0], found[1] if len(found) > 1 else None),
            overtaken=overtaken(call),
            more=more,
        )


def _preferred(call: WaitingCall, agent: Agent | None, picking: Picking) -> Agent | str | None:
    """Inside the window: the preferred agent if free, ``"wait"`` while they are busy (or just
    given another call), None to route as usual (away, paused, excluded, or no common language).
    """
    if agent is None or agent.id in call.excluded_agents or not rules.speaks(agent, call):
        return None
    if picking.get(agent.id) is not None:
        return agent
    if picking.was_free(agent.id) or agent.state in BUSY_STATES:
        return "wait"
    return None


def _priority_heap(
    calls: Sequence[WaitingCall], policy: Policy, now: float
) -> list[tuple[float, float, str, int]]:
    """(-priority, arrival, id, index) of every call not moved by a supervisor, as a heap.

    The priority is :func:`rules.effective_priority`, inlined (the same sums in the same order,
    so the same floats): this loop is most of the cost of a decision when few agents are free.
    """
    p = policy.priority
    head_starts = {name: tier.head_start for name, tier in p.tiers.items()}
    default = head_starts[p.default_tier]
    aging, weight, callback = p.aging, p.value_weight, p.callback_head_start
    heap = []
    for i, c in enumerate(calls):
        if c.move_to_agent is not None:
            continue
        value = c.value_score
        bonus = head_starts.get(c.tier, default) + weight * (
            0.0 if value < 0 else 1.0 if value > 1 else value
        )
        if c.callback:
            bonus += callback
        priority = bonus + c.priority_adjust + aging * (now - c.queued_at)
        heap.append((-priority, c.queued_at, c.id, i))
    heapq.heapify(heap)
    return heap


def _oldest_behind(
    oldest: list[tuple[float, str, int]],
    seen: set[int],
    calls: Sequence[WaitingCall],
    call: WaitingCall,
) -> WaitingCall | None:
    """The longest-waiting call still ranked below ``call``, if it arrived earlier."""
    while oldest and oldest[0][2] in seen:
        heapq.heappop(oldest)
    if oldest and oldest[0][0] < call.queued_at:
        return calls[oldest[0][2]]
    return None
