"""The live router's decision, kept up to date by events instead of rebuilt for each decision.

:func:`cti_server.routing.core.decide` builds its heap and indexes from scratch every time:
with a thousand calls waiting that is most of a decision's cost (ranking every call), though
one freed agent takes only one of them. :class:`LiveIndex` keeps what does not change between
decisions, changes it when a call arrives or leaves or an agent's state or skills change, and
runs the core's own loop (:func:`core.serve`) over it; it returns what :func:`core.decide`
returns for the same calls and agents (tests and ``bench/routing.py`` check it against the
full scan).

What is kept:

- the free agents' indexes (:class:`~cti_server.routing.free_agents.FreeAgents`);
- the waiting calls in priority order, per kind (language, skills, whether a preferred agent
  is named). Every caller ages at the same rate, so the order of two calls never changes with
  time: priority is ``bonus + aging * (now - queued_at)``, and ``aging * queued_at - bonus``
  ranks them for any ``now``. A call's stage (how far its rules have relaxed) is worked out
  when it is looked at, so a call reaching a new stage needs no event. Floats round
  differently in the two forms, so calls whose kept ranks are within rounding of each other
  are put in order by the priority itself, as the core does;
- each kind's longest-waiting call, and the calls not moved by a supervisor, oldest first
  (who a call overtook).

A decision merges the kinds in a language some free agent speaks, best call first, and passes
a whole kind when no free agent qualifies for it at any stage its calls have reached (agents
are only taken during a decision, so it stays so): a freed agent usually reads a few calls,
whether or not they can take any. It stops when every free agent has a call or the calls run
out.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from cti_server.events import AgentState
from cti_server.routing import core, rules
from cti_server.routing.free_agents import FreeAgents, Picking
from cti_server.routing.model import Agent, Assignment, WaitingCall
from cti_server.routing.policy import Policy

_Item = TypeVar("_Item", WaitingCall, Agent)
_Rank = tuple[float, float, str]  # (aging * queued_at - bonus, queued_at, id): smaller first
_Kind = tuple[str | None, frozenset[str], bool]  # language, skills, has a preferred agent
_Head = tuple[_Rank, int, _Kind]  # a kind's best call: its rank, its place in the kind, the kind
_PRUNE_UP_TO = 32
"""Kinds of call are checked against the free agents only while this few are left: a check
scans up to that many agents, and with many free agents nearly every kind is takeable."""
_ROUNDING = 1e-12
"""Relative error bound between a kept rank and the priority computed at decision time (a few
float operations: well above their 1e-16 each, well below any real difference of priority)."""


class LiveIndex:
    """Waiting calls and agents of one node, indexed between decisions.

    Call and agent ids are unique. Change it only between decisions (not while iterating
    :meth:`assignments`).
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._calls: dict[str, WaitingCall] = {}
        self._bonus: dict[str, float] = {}
        self._rank: dict[str, _Rank] = {}
        self._kinds: dict[_Kind, list[_Rank]] = {}
        self._kind_arrivals: dict[_Kind, list[tuple[float, str]]] = {}  # oldest first
        self._heads: dict[str | None, list[_Head]] = {}  # per language, sorted: a heap already
        self._probes: dict[_Kind, WaitingCall] = {}
        self._oldest: list[tuple[float, str]] = []
        self._moved: dict[str, WaitingCall] = {}
        self._magnitude = 0.0  # the largest |aging * queued_at| + |bonus| seen: rounding bound
        self._agents: dict[str, Agent] = {}
        self._free = FreeAgents()

    @property
    def policy(self) -> Policy:
        return self._policy

    # -- events -------------------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> None:
        """A new policy re-ranks every call (tiers, value weight, aging may have changed)."""
        if policy is self._policy or policy == self._policy:
            return
        calls = list(self._calls.values())
        for call in calls:
            self.drop_call(call.id)
        self._policy = policy
        self._magnitude = 0.0
        for call in calls:
            self.put_call(call)

    def put_call(self, call: WaitingCall) -> None:
        """A call starts waiting, or something about it changed (a supervisor, a ring-out)."""
        self.drop_call(call.id)
        self._calls[call.id] = call
        if call.move_to_agent is not None:
            self._moved[call.id] = call
            return
        bonus = rules.bonus(call, self._policy)
        scaled = self._policy.priority.aging * call.queued_at
        rank = (scaled - bonus, call.queued_at, call.id)
        self._bonus[call.id] = bonus
        self._rank[call.id] = rank
        self._magnitude = max(self._magnitude, abs(scaled) + abs(bonus))
        kind = _kind(call)
        ranks = self._kinds.setdefault(kind, [])
        insort(ranks, rank)
        insort(self._kind_arrivals.setdefault(kind, []), (call.queued_at, call.id))
        if ranks[0] is rank:  # the kind's new best call
            heads = self._heads.setdefault(call.language, [])
            if len(ranks) > 1:
                del heads[bisect_left(heads, (ranks[1], 0, kind))]
            insort(heads, (rank, 0, kind))
        insort(self._oldest, (call.queued_at, call.id))

    def drop_call(self, call_id: str) -> None:
        """A call stopped waiting (answered, offered to an agent, hung up); unknown ids pass."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        if self._moved.pop(call_id, None) is not None:
            return
        del self._bonus[call_id]
        rank = self._rank.pop(call_id)
        kind = _kind(call)
        ranks, arrivals = self._kinds[kind], self._kind_arrivals[kind]
        best = ranks[0] == rank
        del ranks[bisect_left(ranks, rank)]
        del arrivals[bisect_left(arrivals, (call.queued_at, call_id))]
        if best:
            heads = self._heads[call.language]
            del heads[bisect_left(heads, (rank, 0, kind))]
            if ranks:
                insort(heads, (ranks[0], 0, kind))
            elif not heads:
                del self._heads[call.language]
        if not ranks:
            del self._kinds[kind], self._kind_arrivals[kind]
            self._probes.pop(kind, None)
        del self._oldest[bisect_left(self._oldest, (call.queued_at, call_id))]

    def put_agent(self, agent: Agent) -> None:
        """An agent signed in, or their state, skills, languages or group changed."""
        self._agents[agent.id] = agent
        if agent.state is AgentState.AVAILABLE:
            self._free.add(agent)
        else:
            self._free.discard(agent.id)

    def drop_agent(self, agent_id: str) -> None:
        """An agent signed out of routing; unknown ids pass."""
        self._agents.pop(agent_id, None)
        self._free.discard(agent_id)

    def sync(self, calls: Iterable[WaitingCall], agents: Iterable[Agent], policy: Policy) -> None:
        """Make the index hold exactly ``calls`` and ``agents`` under ``policy``, changing only
        what differs (for a caller that rebuilds its inputs rather than following events)."""
        self.set_policy(policy)
        _follow(calls, self._calls, self.put_call, self.drop_call)
        _follow(agents, self._agents, self.put_agent, self.drop_agent)

    # -- deciding -----------------------------------------------------------------------------

    def decide(self, now: float) -> list[Assignment]:
        """What :func:`core.decide` returns for the calls and agents held, at ``now``."""
        return list(self.assignments(now))

    def assignments(self, now: float) -> Iterator[Assignment]:
        """:meth:`decide`, one assignment at a time."""
        picking = Picking(self._free)
        if not picking.left or not self._calls:
            return
        policy = self._policy
        yield from core.serve_moved(self._moved.values(), picking, policy, now)
        yield from core.serve(
            picking,
            policy,
            now,
            ranked=self._ranked(now, picking),
            overtaken=self._overtaken(now),
            lookup=self._agents.get,
        )

    def _exact(self, call_id: str, now: float) -> tuple[float, float, str]:
        """The core's order of a call at ``now``: (-priority, arrival, id), the same floats as
        :func:`rules.call_order`."""
        queued_at = self._rank[call_id][1]
        priority = self._bonus[call_id] + self._policy.priority.aging * (now - queued_at)
        return (-priority, queued_at, call_id)

    def _ranked(self, now: float, picking: Picking) -> Iterator[WaitingCall]:
        """Calls some free agent could take, best first at ``now``."""
        merged = self._candidates(now, picking)
        shift = self._policy.priority.aging * now
        slack = _ROUNDING * (abs(shift) + self._magnitude + 1.0)
        pending: list[tuple[float, float, str]] = []  # exact orders of calls read ahead
        upcoming = next(merged, None)
        while True:
            # read ahead every call that could rank before the best one read so far
            while upcoming is not None and (
                not pending or upcoming[0] - shift - slack <= pending[0][0]
            ):
                heapq.heappush(pending, self._exact(upcoming[2], now))
                upcoming = next(merged, None)
            if not pending:
                return
            yield self._calls[heapq.heappop(pending)[2]]

    def _candidates(self, now: float, picking: Picking) -> Iterator[_Rank]:
        """The kept ranks of the calls some free agent could take, smallest first: the kinds of
        call in a language some free agent speaks, merged; a kind no free agent can take at any
        stage its calls have reached is left at its first call, a call at a stage no free agent
        can take is passed.
        Agents are only taken during a decision, so what one could not take stays so."""
        languages: set[str | None] = {None, *self._free.languages()}
        kept = [self._heads[language] for language in languages if language in self._heads]
        heads = [head for kinds in kept for head in kinds]
        if len(kept) > 1:
            heapq.heapify(heads)
        stage_at = self._policy.stage_at
        takeable: dict[_Kind, frozenset[int] | None] = {}  # None: any stage, unchecked
        while heads:
            rank, position, kind = heads[0]
            if kind not in takeable:
                prune = picking.left <= _PRUNE_UP_TO
                takeable[kind] = self._takeable_stages(kind, picking, now) if prune else None
            stages = takeable[kind]
            ranks = self._kinds[kind]
            if stages is not None and not stages:
                heapq.heappop(heads)
                continue
            if position + 1 < len(ranks):
                heapq.heapreplace(heads, (ranks[position + 1], position + 1, kind))
            else:
                heapq.heappop(heads)
            if stages is None or stage_at(now - rank[1]) in stages:
                yield rank

    def _takeable_stages(self, kind: _Kind, picking: Picking, now: float) -> frozenset[int] | None:
        """The stages, up to the one its longest-waiting call has reached, at which some free
        agent qualifies for calls of ``kind`` (exclusions only narrow it); None for calls with
        a preferred agent, who may take them at any stage."""
        language, skills, preferred = kind
        if preferred:
            return None
        probe = self._probes.get(kind)
        if probe is None:
            probe = WaitingCall("", queued_at=0.0, skills=skills, language=language)
            self._probes[kind] = probe
        reached = self._policy.stage_at(now - self._kind_arrivals[kind][0][0])
        stages = enumerate(self._policy.eligibility[: reached + 1])
        return frozenset(index for index, stage in stages if picking.can_take(probe, stage))

    def _overtaken(self, now: float) -> core.Overtaken:
        """For calls given in priority order: the oldest call ranked below, if it came earlier.
        Calls ranked above the current one stay above the next ones: passed once for good."""
        oldest = self._oldest
        passed = 0

        def overtaken(call: WaitingCall) -> WaitingCall | None:
            nonlocal passed
            order = self._exact(call.id, now)
            while passed < len(oldest):
                queued_at, call_id = oldest[passed]
                if queued_at >= call.queued_at:
                    return None
                if self._exact(call_id, now) > order:
                    return self._calls[call_id]
                passed += 1
            return None

        return overtaken


def _follow(
    wanted: Iterable[_Item],
    held: dict[str, _Item],
    put: Callable[[_Item], None],
    drop: Callable[[str], None],
) -> None:
    """Put what is new or changed in ``held``, drop what is no longer ``wanted``."""
    ids = set()
    for item in wanted:
        ids.add(item.id)
        old = held.get(item.id)
        if old is not item and old != item:
            put(item)
    for gone in [key for key in held if key not in ids]:
        drop(gone)


def _kind(call: WaitingCall) -> _Kind:
    return (call.language, call.skills, call.preferred_agent is not None)
