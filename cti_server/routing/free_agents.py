"""The free agents, indexed for the search of the best one for a call.

One structure serves both deciders: the pure core builds it afresh from a list of agents for
each decision; the live index keeps it between decisions and adds or drops an agent when their
state or skills change. A decision never changes it: it reads it through a :class:`Picking`,
which remembers the agents given a call in that decision.

Each list holds the free agents of one (group, skill), (group, language) or group, in tie-break
order (:func:`rules.agent_order`), so a call scans the shortest list that can hold its
candidates, merged across the groups its stage allows, and stops at the first few that qualify.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

from cti_server.events import AgentState
from cti_server.routing import rules
from cti_server.routing.model import Agent, WaitingCall
from cti_server.routing.policy import Stage

Order = tuple[float, float, str]  # rules.agent_order: idle since, occupancy, id
Key = tuple[str, str, str]  # ("skill" | "lang" | "all", group, name)


def _keys_of(agent: Agent) -> list[Key]:
    group = agent.group
    keys: list[Key] = [("all", group, "")]
    keys += [("skill", group, skill) for skill in agent.skills]
    keys += [("lang", group, language) for language in agent.languages]
    return keys


class FreeAgents:
    """The available agents, in tie-break order, by group, skill and language."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[str, Agent] = {}
        self._index: dict[Key, list[Order]] = {}
        free = {a.id: a for a in agents if a.state is AgentState.AVAILABLE}
        for agent in sorted(free.values(), key=rules.agent_order):  # appended in order: sorted
            self._agents[agent.id] = agent
            order = rules.agent_order(agent)
            for key in _keys_of(agent):
                self._index.setdefault(key, []).append(order)

    def __len__(self) -> int:
        return len(self._agents)

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def add(self, agent: Agent) -> None:
        """Index ``agent`` (who must be available), replacing what was known of them."""
        if agent.state is not AgentState.AVAILABLE:
            raise ValueError(f"agent {agent.id!r} is {agent.state.value}, not available")
        self.discard(agent.id)
        self._agents[agent.id] = agent
        order = rules.agent_order(agent)
        for key in _keys_of(agent):
            insort(self._index.setdefault(key, []), order)

    def discard(self, agent_id: str) -> None:
        """Forget ``agent_id`` if indexed (no longer free, or gone)."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        order = rules.agent_order(agent)
        for key in _keys_of(agent):
            orders = self._index[key]
            del orders[bisect_left(orders, order)]
            if not orders:
                del self._index[key]

    def languages(self) -> set[str]:
        """Every language some free agent speaks."""
        return {name for kind, _, name in self._index if kind == "lang"}


class Picking:
    """One decision's view of the free agents: who has been given a call so far."""

    def __init__(self, free: FreeAgents) -> None:
        self._free = free
        self._index = free._index  # read only, for the search below
        self._taken: set[str] = set()
        self._start: dict[Key, int] = {}
        self.left = len(free)

    def get(self, agent_id: str) -> Agent | None:
        """The agent if free and not yet given a call in this decision."""
        return None if agent_id in self._taken else self._free.get(agent_id)

    def was_free(self, agent_id: str) -> bool:
        return self._free.get(agent_id) is not None

    def take(self, agent: Agent) -> None:
        self._taken.add(agent.id)
        self.left -= 1

    def best(self, call: WaitingCall, stage: Stage, want: int) -> tuple[list[Agent], bool]:
        """Up to ``want`` qualified agents in tie-break order, and whether more qualify."""
        lists = [self._scan(key) for key in self._keys(call, stage)]
        orders = lists[0] if len(lists) == 1 else heapq.merge(*lists)
        found: list[Agent] = []
        agents = self._free._agents
        for order in orders:
            agent = agents[order[2]]
            if rules.qualifies(agent, call, stage):
                if len(found) == want:
                    return found, True
                found.append(agent)
        return found, False

    def can_take(self, call: WaitingCall, stage: Stage) -> bool:
        """Whether some agent not yet given a call qualifies for ``call`` under ``stage``."""
        agents = self._free._agents
        return any(
            rules.qualifies(agents[order[2]], call, stage)
            for key in self._keys(call, stage)
            for order in self._scan(key)
        )

    def _keys(self, call: WaitingCall, stage: Stage) -> list[Key]:
        """Per allowed group, the shortest index list that holds every qualified agent."""
        keys = []
        for group in stage.groups:
            options: list[Key] = [("all", group, "")]
            if stage.min_level > 0:
                options += [("skill", group, skill) for skill in call.skills]
            if call.language is not None:
                options.append(("lang", group, call.language))
            keys.append(min(options, key=lambda key: len(self._index.get(key, ()))))
        return keys

    def _scan(self, key: Key) -> Iterator[Order]:
        orders = self._index.get(key, [])
        taken = self._taken
        start = self._start.get(key, 0)
        while start < len(orders) and orders[start][2] in taken:
            start += 1  # taken agents never come back in a decision: skip them once for good
        self._start[key] = start
        for index in range(start, len(orders)):
            if orders[index][2] not in taken:
                yield orders[index]
