"""The decision core: which available agent takes which waiting call, and why.

A pure function of (waiting calls, agents, policy, now): no I/O, no clock, no state between
calls, so the live router, the tests, the benchmark and the what-if simulator run the same code.

How it stays fast with a thousand agents and a thousand calls: calls come off a heap in
priority order (only as many as there are free agents to give them); free agents are sorted
once in tie-break order and indexed by (group, skill) and (group, language), so a call scans
the shortest list that can hold its candidates, merged across the groups its stage allows,
and stops at the first few that qualify. Agents already given a call are skipped lazily, and
once no free agent meets a kind of call (skills, language, stage), later calls of that kind
are passed over without a search.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from cti_server.events import AgentState
from cti_server.routing import explain, rules
from cti_server.routing.model import BUSY_STATES, Agent, Assignment, WaitingCall
from cti_server.routing.policy import Policy, Stage

_Key = tuple[str, str, str]  # ("skill" | "lang" | "all", group, name)


class _FreeAgents:
    """The available agents of one decision, in tie-break order, indexed for the search."""

    def __init__(self, agents: Iterable[Agent]) -> None:
        free = [a for a in agents if a.state is AgentState.AVAILABLE]
        free.sort(key=rules.agent_order)
        self.agents = free
        self.left = len(free)
        self._rank = {a.id: rank for rank, a in enumerate(free)}
        self._taken = [False] * len(free)
        self._index: defaultdict[_Key, list[int]] = defaultdict(list)
        self._start: dict[_Key, int] = {}
        for rank, agent in enumerate(free):
            group = agent.group
            self._index["all", group, ""].append(rank)
            for skill in agent.skills:
                self._index["skill", group, skill].append(rank)
            for language in agent.languages:
                self._index["lang", group, language].append(rank)

    def get(self, agent_id: str) -> Agent | None:
        """The agent if free and not yet given a call in this decision."""
        rank = self._rank.get(agent_id)
        return None if rank is None or self._taken[rank] else self.agents[rank]

    def was_free(self, agent_id: str) -> bool:
        return agent_id in self._rank

    def take(self, agent: Agent) -> None:
        self._taken[self._rank[agent.id]] = True
        self.left -= 1

    def best(self, call: WaitingCall, stage: Stage, want: int) -> tuple[list[Agent], bool]:
        """Up to ``want`` qualified agents in tie-break order, and whether more qualify."""
        lists = [self._scan(key) for key in self._keys(call, stage)]
        ranks = lists[0] if len(lists) == 1 else heapq.merge(*lists)
        found: list[Agent] = []
        for rank in ranks:
            agent = self.agents[rank]
            if rules.qualifies(agent, call, stage):
                if len(found) == want:
                    return found, True
                found.append(agent)
        return found, False

    def _keys(self, call: WaitingCall, stage: Stage) -> list[_Key]:
        """Per allowed group, the shortest index list that holds every qualified agent."""
        keys = []
        for group in stage.groups:
            options: list[_Key] = [("all", group, "")]
            if stage.min_level > 0:
                options += [("skill", group, skill) for skill in call.skills]
            if call.language is not None:
                options.append(("lang", group, call.language))
            keys.append(min(options, key=lambda key: len(self._index.get(key, ()))))
        return keys

    def _scan(self, key: _Key) -> Iterator[int]:
        ranks = self._index.get(key, [])
        start = self._start.get(key, 0)
        while start < len(ranks) and self._taken[ranks[start]]:
            start += 1  # taken agents never come back: skip them once for good
        self._start[key] = start
        for index in range(start, len(ranks)):
            if not self._taken[ranks[index]]:
                yield ranks[index]


def decide(
    calls: Sequence[WaitingCall], agents: Sequence[Agent], policy: Policy, now: float
) -> list[Assignment]:
    """Every assignment the policy makes now, best call first, each with its explanation."""
    return list(assignments(calls, agents, policy, now))


def assignments(
    calls: Sequence[WaitingCall], agents: Sequence[Agent], policy: Policy, now: float
) -> Iterator[Assignment]:
    """:func:`decide`, one assignment at a time (a caller may stop early)."""
    free = _FreeAgents(agents)
    if not free.left or not calls:
        return
    present: dict[str, Agent] | None = None
    want = max(2, policy.explain_candidates)  # the runner-up names the tie-break

    moved = sorted(
        (c for c in calls if c.move_to_agent is not None),
        key=lambda c: rules.call_order(c, policy, now),
    )
    for call in moved:  # a supervisor's move beats every rule; a busy agent is waited for
        agent = free.get(call.move_to_agent or "")
        if agent is not None:
            free.take(agent)
            yield explain.assign(call, [agent], policy, now, agent_rule=rules.MOVED)

    heap = _priority_heap(calls, policy, now)
    oldest = [(c.queued_at, c.id, i) for i, c in enumerate(calls) if c.move_to_agent is None]
    heapq.heapify(oldest)
    seen: set[int] = set()
    hopeless: set[tuple[frozenset[str], str | None, int]] = set()  # needs no free agent meets
    window = policy.preferred_agent.window
    while heap and free.left:
        _, _, _, i = heapq.heappop(heap)
        seen.add(i)
        call = calls[i]
        waited = now - call.queued_at
        if call.preferred_agent is not None and waited < window:
            if present is None:
                present = {a.id: a for a in agents}
            match _preferred(call, present.get(call.preferred_agent), free):
                case Agent() as agent:
                    free.take(agent)
                    overtaken = _oldest_behind(oldest, seen, calls, call)
                    yield explain.assign(
                        call, [agent], policy, now, agent_rule=rules.PREFERRED, overtaken=overtaken
                    )
                    continue
                case "wait":
                    continue
        stage = policy.stage_at(waited)
        shape = (call.skills, call.language, stage)
        if shape in hopeless:
            continue
        found, more = free.best(call, policy.eligibility[stage], want)
        if not found:
            if not call.excluded_agents:
                hopeless.add(shape)  # agents are only ever taken: no later call of it will do
            continue
        free.take(found[0])
        yield explain.assign(
            call,
            found,
            policy,
            now,
            agent_rule=rules.tie_break(found[0], found[1] if len(found) > 1 else None),
            overtaken=_oldest_behind(oldest, seen, calls, call),
            more=more,
        )


def _preferred(call: WaitingCall, agent: Agent | None, free: _FreeAgents) -> Agent | str | None:
    """Inside the window: the preferred agent if free, ``"wait"`` while they are busy (or just
    given another call), None to route as usual (away, paused, excluded, or no common language).
    """
    if agent is None or agent.id in call.excluded_agents or not rules.speaks(agent, call):
        return None
    if free.get(agent.id) is not None:
        return agent
    if free.was_free(agent.id) or agent.state in BUSY_STATES:
        return "wait"
    return None


def _priority_heap(
    calls: Sequence[WaitingCall], policy: Policy, now: float
) -> list[tuple[float, float, str, int]]:
    """(-priority, arrival, id, index) of every call not moved by a supervisor, as a heap.

    The priority is :func:`rules.effective_priority`, inlined: this loop is most of the cost
    of a decision when few agents are free."""
    p = policy.priority
    head_starts = {name: tier.head_start for name, tier in p.tiers.items()}
    default = head_starts[p.default_tier]
    aging, weight, callback = p.aging, p.value_weight, p.callback_head_start
    heap = []
    for i, c in enumerate(calls):
        if c.move_to_agent is not None:
            continue
        value = c.value_score
        priority = (
            head_starts.get(c.tier, default)
            + aging * (now - c.queued_at)
            + (weight * (0.0 if value < 0 else 1.0 if value > 1 else value) if weight else 0.0)
            + (callback if c.callback else 0.0)
            + c.priority_adjust
        )
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
