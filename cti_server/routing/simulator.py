"""What-if simulation: recorded traffic replayed through the decision core under a policy.

A discrete-event simulation in plain Python, deterministic for given traffic: callers arrive
when they did, need the service type they asked for, hang up when their patience runs out,
and hold an agent for their recorded handle time plus an after-call time. Whenever something
happens (an arrival, a hang-up, an agent freed or coming on duty, a call reaching its next
relaxation stage or the end of its preferred-agent window) the waiting calls and the agents go
through :func:`cti_server.routing.core.decide`, the same function the live router calls.

Soundness, on the bank's August 1999 traffic with the recorded staffing; tolerance: a class's
mean wait (all its callers) within 20 % of the observed one and its abandon rate within 3
points. The bank's documented rule (``bank-fifo``: first come, first served, class 2 credited
90 s, class 0 treated as class 1) reproduces classes 1 and 2 in every week, but not class 0
(prospective customers and internet users): month 123 s and 42.9 % where they had 144 s and
48.0 %. The agents' choices show why: between a waiting class 1 and class 0 caller, they took
the class 1 caller when the other had waited up to 90 s longer, and rarely beyond
(:func:`cti_server.routing.traffic.observed_lead`: in the first week a 90 s lead explains
94 % of 1,068 such choices; 100, 85 and 95 s in the later weeks; class 2's documented 90 s over
class 1 comes out at 90 s in every week). ``bank-observed`` is that rule: class 0 90 s behind
class 1, class 2 90 s ahead.

Read on the first week (1-7 August, with the 10-minute break of the staffing) and checked on
the rest (observed / ``bank-observed`` / ``bank-fifo``, mean wait and abandon rate)::

    class 0   1-7 Aug   159 s 52.4 %   158 s 51.4 %   140 s 48.1 %   (read here)
              8-14      177 s 53.9 %   169 s 51.6 %   149 s 49.3 %
              15-21     119 s 40.8 %   106 s 36.7 %    96 s 34.3 %
              22-31      92 s 38.2 %    79 s 33.6 %    72 s 31.9 %
    class 1   1-7 Aug   127 s 35.9 %   136 s 37.6 %   145 s 38.6 %
              8-14      133 s 31.0 %   131 s 31.0 %   141 s 32.9 %
              15-21      90 s 21.4 %    90 s 21.2 %    95 s 22.9 %
              22-31      71 s 13.8 %    70 s 14.3 %    76 s 15.7 %
    class 2   1-7 Aug   114 s 21.5 %   116 s 21.4 %   124 s 21.7 %
              8-14      114 s 18.6 %   106 s 18.2 %   112 s 18.4 %
              15-21      76 s 12.5 %    74 s 12.8 %    76 s 12.9 %
              22-31      64 s  7.9 %    56 s  7.8 %    60 s  8.3 %

So on the weeks held out, ``bank-observed`` reproduces classes 1 and 2 and narrows FIFO's error
on class 0 in every week, and class 0 in 8-14 August (2.3 points short; 1.3-2.5 over six other
seeds of the traffic's draws), but not later: its waits come out 11-14 % short and its abandon
rate 4.1 and 4.6 points short in 15-21 and 22-31 August (2.9-4.7 and 3.6-6.2 over the six
seeds, which keep classes 1 and 2 within the tolerance). The replay still answers 25 % of the
class 0 callers who hung up in 22-31 August (11 % in the first week).

What the agents' time went to, measured (the figures before the staffing's types per part of a
shift, see :mod:`cti_server.routing.traffic`, were 3.4, 7.1 and 6.4 points short, 3.3-7.6
over the seeds):

* After-call time is not longer after class 0's types: the gaps between two services while
  callers of the agent's types waited average 20.8 s after an internet user, 24.8 s after a
  prospect, 22.3 s after a regular call (median 5-6 s; 33 s after stock exchange, 50 s after a
  callback), and the agents who took class 0 are no slower (their mean gaps, weighted by the
  calls of each class they took: 23.6-25.5 s for every class in every week). After-call time
  drawn per service type or per agent from the first week leaves class 0 as short (3.4, 5.6, 7.1
  points; 3.2, 6.0 and 7.6), and so do callers served at once in the record (whose patience
  nobody saw) never hanging up in the replay (4.2, 6.4 and 5.8).
* Nor were agents less ready when only class 0 waited: they were idle 12.7, 15.5, 16.4 and
  18.7 % of the time only class 0 callers of their types waited, 11.5, 12.5, 14.9 and 16.9 %
  of the time a class 1 or 2 caller did. Counting as not ready every moment an agent was idle
  while a caller of their types waited (besides the after-call gaps) takes class 0 to 0.8, 4.4
  and 3.9 points short, but class 1's waits 12-13 % too long in the first two weeks and its
  abandon rate 3.0 points over in the second: that time was lost to every class, not class 0.
* The agents did not serve every type of their shift throughout it. An agent who took a call
  straight from the voice unit was free and ready; if a caller of another type of their shift
  was waiting, they were not taking that type then. A class 0 caller of the type was waiting at
  such calls, week by week: when the call fell between two of the agent's services of the type,
  in 2.0, 1.1, 1.5 and 0.2 % of them for internet users, 0.3, 3.4, 0.5 and 1.3 % for
  prospects; before the agent's first or after their last service of it, 6.6, 22.2, 4.5 and
  4.4 %, 6.4, 13.1, 1.6 and 2.0 %; for agents without the type in the shift, 20.0, 32.3, 12.5
  and 5.4 %, 19.6, 21.6, 10.8 and 7.9 %. The staffing now takes an agent off a type between
  their services of it around each such moment (5-14 % of the hours on class 0's types). Taking
  every agent off each type outside their first and last service of it in the shift would
  reproduce every class, but that is not what the data shows: for prospects that span covers
  59-66 % of a shift, and 63-69 % with the order of the agent's calls shuffled; it is short
  because a type's calls are few, not because the agents turned to it late or left it early.

Order does not close the rest: a lead of up to 240 s keeps the first week within the tolerance
and leaves 22-31 August 4.1 points short; with account holders strictly first class 0 gets
236 s and 60.0 % in the first week (48 % too long) and 218 s, 58.9 % in the second. What the
rest of class 0's agent time went to in the second half of the month the data does not record.
A skill stage would take it away: ``bank-observed`` with skill level 3 required for the first
60 s came within the tolerance for every class in every week (before the staffing by part of a
shift), but the bank did not work that way: agents with a level of 1 or 2 in a type took 30 % of
their prospects, 25 % of their internet users and 41 % of their stock-exchange callers before
these had waited 60 s, which the stage forbids. It fits the figures, not the bank, and is not
shipped. Service level is not part of the check: the replay answers two to three times the
recorded share of callers within 20 s.

A caller's preferred agent is the agent who last served that customer in the simulation.
Results per customer class (the bank's priority 0, 1, 2; "all" adds the callers whose class
the data cannot tell): ASA (mean wait of answered calls), mean wait of all callers, abandon
rate, and service level (share of callers answered within the threshold).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

from cti_server.events import AgentState
from cti_server.routing.core import decide
from cti_server.routing.model import Agent, WaitingCall
from cti_server.routing.policy import Policy
from cti_server.routing.traffic import CLASS_TIERS, Shift, Traffic, TrafficCall

CLASSES = ("0", "1", "2", "all")
GENERIC_LEVEL = 5


@dataclass(frozen=True, slots=True)
class Figures:
    offered: int
    answered: int
    asa: float
    mean_wait: float
    abandon_rate: float
    service_level: float

    @classmethod
    def of(cls, outcomes: Sequence[tuple[float, bool]], threshold: float) -> Figures:
        """From (wait, answered?) of each caller."""
        answered = [wait for wait, ok in outcomes if ok]
        offered = len(outcomes)
        return cls(
            offered=offered,
            answered=len(answered),
            asa=sum(answered) / len(answered) if answered else math.nan,
            mean_wait=sum(wait for wait, _ in outcomes) / offered if offered else math.nan,
            abandon_rate=1 - len(answered) / offered if offered else math.nan,
            service_level=sum(w <= threshold for w in answered) / offered if offered else math.nan,
        )


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    classes: dict[str, Figures]


def _report(
    name: str, outcomes: Iterable[tuple[TrafficCall, float, bool]], threshold: float
) -> Report:
    groups: dict[str, list[tuple[float, bool]]] = {key: [] for key in CLASSES}
    for call, wait, answered in outcomes:
        if call.klass is not None:
            groups[str(call.klass)].append((wait, answered))
        groups["all"].append((wait, answered))
    return Report(name, {key: Figures.of(group, threshold) for key, group in groups.items()})


def observed(traffic: Traffic, service_level_s: float = 20.0) -> Report:
    """The figures of the recorded calls themselves."""
    outcomes = ((c, c.observed_wait, c.observed == "served") for c in traffic.calls)
    return _report("observed", outcomes, service_level_s)


class _Event(IntEnum):
    """Kinds of events, in the order they are handled when simultaneous."""

    SERVICE_END = 0
    SHIFT_START = 1
    SHIFT_END = 2
    HANG_UP = 3
    ARRIVAL = 4
    RECHECK = 5


@dataclass(slots=True)
class _Desk:
    """One agent's simulated state, and the :class:`Agent` the core sees."""

    agent: Agent
    on_duty: bool = False
    busy: bool = False
    duty_since: float = 0.0
    busy_s: float = 0.0
    busy_since: float = 0.0


@dataclass
class _Run:
    traffic: Traffic
    policy: Policy
    shifts: Sequence[Shift]
    skills: dict[str, dict[str, int]]
    events: list[tuple[float, int, int, str]] = field(default_factory=list)
    waiting: dict[str, WaitingCall] = field(default_factory=dict)
    desks: dict[str, _Desk] = field(default_factory=dict)
    last_agent: dict[str, str] = field(default_factory=dict)
    handovers: set[tuple[str, float]] = field(default_factory=set)
    """(agent, moment) where a part of an agent's shift starts: a part ending then is no end."""
    outcomes: list[tuple[TrafficCall, float, bool]] = field(default_factory=list)
    _seq: int = 0

    def push(self, at: float, kind: _Event, key: str) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, kind, self._seq, key))

    def run(self) -> list[tuple[TrafficCall, float, bool]]:
        calls = {c.id: c for c in self.traffic.calls}
        for agent, levels in self.skills.items():
            self.desks[agent] = _Desk(Agent(agent, levels, state=AgentState.LOGGED_OUT))
        shifts = {f"{i}": s for i, s in enumerate(self.shifts)}
        self.handovers = {(s.agent, s.start) for s in self.shifts}
        for key, shift in shifts.items():
            self.push(shift.start, _Event.SHIFT_START, key)
            self.push(shift.end, _Event.SHIFT_END, key)
        for call in self.traffic.calls:
            self.push(call.arrival, _Event.ARRIVAL, call.id)
        now = 0.0
        while self.events:
            now, kind, _, key = heapq.heappop(self.events)
            if kind == _Event.ARRIVAL:
                self._arrive(calls[key], now)
            elif kind == _Event.HANG_UP and key in self.waiting:
                del self.waiting[key]
                self.outcomes.append((calls[key], now - calls[key].arrival, False))
            elif kind == _Event.SERVICE_END:
                self._free(key, now)
            elif kind in (_Event.SHIFT_START, _Event.SHIFT_END):
                self._duty(shifts[key], now, on=kind == _Event.SHIFT_START)
            if self.events and self.events[0][0] == now:
                continue  # decide once everything that happens at this moment has happened
            if self.waiting:
                self._dispatch(calls, now)
        for key in self.waiting:  # nobody came on duty again before the end of the traffic
            self.outcomes.append((calls[key], now - calls[key].arrival, False))
        return self.outcomes

    def _arrive(self, call: TrafficCall, now: float) -> None:
        customer = call.customer
        self.waiting[call.id] = WaitingCall(
            id=call.id,
            queued_at=now,
            tier=CLASS_TIERS.get(call.klass, "standard") if call.klass is not None else "standard",
            skills=frozenset({call.kind}),
            preferred_agent=self.last_agent.get(customer) if customer else None,
        )
        if math.isfinite(call.patience):
            self.push(now + call.patience, _Event.HANG_UP, call.id)
        for stage in self.policy.eligibility[1:]:
            self.push(now + stage.after, _Event.RECHECK, call.id)
        if self.waiting[call.id].preferred_agent and self.policy.preferred_agent.window:
            self.push(now + self.policy.preferred_agent.window, _Event.RECHECK, call.id)

    def _dispatch(self, calls: dict[str, TrafficCall], now: float) -> None:
        on_duty = [desk.agent for desk in self.desks.values() if desk.on_duty]
        if not any(a.state is AgentState.AVAILABLE for a in on_duty):
            return
        for assignment in decide(list(self.waiting.values()), on_duty, self.policy, now):
            call = calls[assignment.call_id]
            del self.waiting[call.id]
            self.outcomes.append((call, now - call.arrival, True))
            if call.customer:
                self.last_agent[call.customer] = assignment.agent_id
            desk = self.desks[assignment.agent_id]
            desk.busy, desk.busy_since = True, now
            desk.agent = replace(desk.agent, state=AgentState.ON_CALL)
            self.push(now + call.handle + call.after_call, _Event.SERVICE_END, assignment.agent_id)

    def _free(self, agent: str, now: float) -> None:
        desk = self.desks[agent]
        desk.busy = False
        desk.busy_s += now - desk.busy_since
        state = AgentState.AVAILABLE if desk.on_duty else AgentState.LOGGED_OUT
        desk.agent = replace(desk.agent, state=state, idle_since=now, occupancy=_share(desk, now))

    def _duty(self, shift: Shift, now: float, *, on: bool) -> None:
        desk = self.desks[shift.agent]
        if not on and (shift.agent, now) in self.handovers:
            return  # the next part of the shift starts now: they stay on duty
        levels = self.skills[shift.agent]
        if shift.kinds is not None:  # the types they took in this part, at their levels
            levels = {kind: level for kind, level in levels.items() if kind in shift.kinds}
        if on and desk.on_duty:  # from one part of a shift to the next: other types only
            desk.agent = replace(desk.agent, skills=levels)
            return
        desk.on_duty = on
        if on:
            desk.duty_since, desk.busy_s = now, 0.0
            desk.agent = replace(desk.agent, skills=levels)
        if not desk.busy:
            state = AgentState.AVAILABLE if on else AgentState.LOGGED_OUT
            desk.agent = replace(desk.agent, state=state, idle_since=now, occupancy=0.0)


def _share(desk: _Desk, now: float) -> float:
    on_duty = now - desk.duty_since
    return min(1.0, desk.busy_s / on_duty) if on_duty > 0 else 0.0


def generic_roster(traffic: Traffic, agents: int) -> tuple[list[Shift], dict[str, dict[str, int]]]:
    """``agents`` agents who serve every type at level 5, on duty whenever anyone was."""
    spans = sorted((s.start, s.end) for s in traffic.shifts)
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    kinds = sorted({c.kind for c in traffic.calls})
    names = [f"agent-{n:03d}" for n in range(1, agents + 1)]
    shifts = [Shift(name, start, end) for name in names for start, end in merged]
    return shifts, {name: dict.fromkeys(kinds, GENERIC_LEVEL) for name in names}


def simulate(
    traffic: Traffic,
    policy: Policy,
    *,
    service_level_s: float = 20.0,
    agents: int | None = None,
) -> Report:
    """Replay ``traffic`` under ``policy``, with the recorded staffing or ``agents`` agents."""
    return _report(policy.name, replay(traffic, policy, agents=agents), service_level_s)


def replay(
    traffic: Traffic, policy: Policy, *, agents: int | None = None
) -> list[tuple[TrafficCall, float, bool]]:
    """Each caller of ``traffic`` replayed: (call, seconds waited, answered?), in the order
    they left the queue; with the traffic's own shifts and skills or ``agents`` agents."""
    if agents is None:
        shifts, skills = list(traffic.shifts), traffic.skills
    else:
        shifts, skills = generic_roster(traffic, agents)
    return _Run(traffic, policy, shifts, skills).run()


def table(reports: Sequence[Report], service_level_s: float = 20.0) -> str:
    """The reports side by side, one line per class and source, as plain text."""
    width = max(len(r.name) for r in reports)
    head = (
        f"{'class':<5}  {'policy':<{width}}  {'offered':>7}  {'ASA s':>7}  {'wait s':>7}  "
        f"{'abandon':>7}  {f'SL {service_level_s:g}s':>7}"
    )
    lines = [head, "-" * len(head)]
    for key in CLASSES:
        for report in reports:
            f = report.classes[key]
            lines.append(
                f"{key:<5}  {report.name:<{width}}  {f.offered:>7}  {f.asa:>7.1f}  "
                f"{f.mean_wait:>7.1f}  {f.abandon_rate:>7.1%}  {f.service_level:>7.1%}"
            )
    return "\n".join(lines)
