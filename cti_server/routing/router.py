"""The router service: decides on every relevant event and on a timer, carries decisions out on
Asterisk, and keeps their explanations.

It decides whenever a call starts waiting, an agent's state changes (freed, paused, unpaused),
the policy or a supervisor changes something, and at least every ``routing.tick_seconds`` (waits
age and rules relax with time alone), so no call waits for an event that never comes. Each node's
waiting calls and agents are kept in a :class:`~cti_server.routing.live_index.LiveIndex` between
decisions: each cycle tells it only the calls and agents that changed, and it decides as
:func:`~cti_server.routing.core.decide` would without ranking every waiting call again. One
task does all the deciding and all the AMI work, in order; the bus consumer only updates what
the router knows and wakes it.

Only one router may run per Asterisk node (two would offer the same call twice): enable routing
in one CTI process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from crm_core.routing import CustomerFacts
from cti_server.bus import Bus, Subscription
from cti_server.config import RoutingSettings
from cti_server.events import (
    AgentState,
    AgentStateChanged,
    AmiLinkChanged,
    CallAnswered,
    CallEnded,
    CallQueued,
    CallRangOut,
    CallRouted,
    CallState,
    CustomerIdentified,
    DomainEvent,
    IdentifiedBy,
    IvrFinished,
)
from cti_server.routing import execution, explain, inputs
from cti_server.routing.directory import RoutingFacts
from cti_server.routing.live_index import LiveIndex
from cti_server.routing.model import Agent, Assignment, WaitingCall
from cti_server.routing.noanswer import ring_no_answer
from cti_server.routing.occupancy import Occupancy
from cti_server.routing.policy import Policy
from cti_server.routing.reloader import PolicyReloader
from cti_server.telephony.agent_actions import AgentActionError
from cti_server.telephony.ami_client import AmiClient, AmiError
from cti_server.tracker import model as live
from cti_server.tracker.tracker import Tracker

log = logging.getLogger(__name__)

Publish = Callable[[DomainEvent], None]
Key = tuple[str, str]  # (node, linkedid) or (node, extension)

OFFER_GRACE = 10.0
"""Seconds past the ring time after which an offer that never reached the agent is given up."""
HOLD_SECONDS = 10.0
"""How long a pause the router asked for counts before Asterisk shows it."""


class RoutingError(Exception):
    """A supervisor's request the router cannot carry out; ``status`` for the HTTP edge."""

    status = 400
    code = "routing_error"


class UnknownCall(RoutingError):
    status = 404
    code = "not_found"


class UnknownAgent(RoutingError):
    status = 409
    code = "unknown_agent"


@dataclass
class _Offer:
    """An assignment being carried out: the call rings the agent through their own queue."""

    assignment: Assignment
    call: WaitingCall
    interface: str
    ring: int
    reached_agent: bool = False
    """The call joined the agent's queue: a return to waiting now means it rang out."""


@dataclass
class _CallRouting:
    """What the router knows of one call beyond the tracker."""

    attributes: dict[str, str] | None = None
    customer_id: int | None = None
    identified: bool = False  # CustomerIdentified came (whoever it named, if anyone)
    facts: CustomerFacts | None = None
    facts_read: bool = False
    priority_adjust: float = 0.0
    move_to_agent: str | None = None
    moved_by: str = ""  # the supervisor who moved the call
    excluded: set[str] = field(default_factory=set)
    no_answer: list[dict[str, Any]] = field(default_factory=list)
    offer: _Offer | None = None
    queue: str = ""
    waiting_since: float | None = None
    last: WaitingCall | None = None

    def context(self) -> inputs.CallContext:
        return inputs.CallContext(
            attributes=self.attributes or {},
            facts=self.facts,
            priority_adjust=self.priority_adjust,
            move_to_agent=self.move_to_agent,
            excluded_agents=frozenset(self.excluded),
            waiting_since=self.waiting_since,
        )


@dataclass(frozen=True)
class _RangOut:
    node: str
    linkedid: str
    extension: str
    interface: str
    reason: str


class Router:
    def __init__(
        self,
        *,
        tracker: Tracker,
        links: Sequence[AmiClient],
        policies: PolicyReloader,
        directory: RoutingFacts,
        publish: Publish,
        settings: RoutingSettings,
        waiting_queues: Iterable[str],
        clock: Callable[[], float] = time.time,
        is_leader: Callable[[], bool] = lambda: True,
        identify_wait: float = 0.0,
    ) -> None:
        self._tracker = tracker
        # a call with a caller ID waits this long from its arrival for ``CustomerIdentified``
        # (its customer's facts decide who gets it); 0: routed on what is known at once
        self._identify_wait = identify_wait
        # processes sharing nodes: all follow the calls, only the leader decides and beats
        self._is_leader = is_leader
        self._links = {link.status.node: link for link in links}
        self._policies = policies
        self._directory = directory
        self._publish = publish
        self._settings = settings
        self._waiting = frozenset(waiting_queues)
        self._clock = clock
        self._calls: dict[Key, _CallRouting] = {}
        self._rang_out: list[_RangOut] = []
        self._holding: dict[Key, float] = {}  # agents the router paused, until Asterisk shows it
        self._occupancy = Occupancy()
        self._agents: dict[str, list[Agent]] = {}
        self._indexes: dict[str, LiveIndex] = {}  # per node, kept between decisions
        self._interfaces: dict[Key, str] = {}
        self._wake = asyncio.Event()
        self._events: Subscription | None = None
        self._started = clock()
        self._beat_at = 0.0
        self.decisions: deque[dict[str, Any]] = deque(maxlen=settings.decisions_kept)
        self.cycles = 0
        self.last_error = ""

    # -- wiring and lifecycle -----------------------------------------------------------------

    def subscribe(self, bus: Bus) -> None:
        """Every event the router reacts to, in one place."""
        self._events = bus.subscribe(
            IvrFinished,
            CustomerIdentified,
            CallQueued,
            CallAnswered,
            CallEnded,
            AgentStateChanged,
            AmiLinkChanged,
        )

    async def run(self) -> None:
        """Route until cancelled; on the way out, hand waiting calls to the fallback at once."""
        if self._events is None:
            raise RuntimeError("Router.subscribe(bus) first")
        self._started = self._clock()
        tasks = [
            asyncio.create_task(self._consume(self._events), name="router-events"),
            asyncio.create_task(self._route_forever(), name="router-decide"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._events.close()
            await self._release()

    async def _release(self) -> None:
        for link in self._links.values():
            if link.connected:
                with contextlib.suppress(AgentActionError, AmiError, TimeoutError):
                    await execution.heartbeat(link, 0)

    # -- what the router learns from events ---------------------------------------------------

    async def _consume(self, events: Subscription) -> None:
        async for event in events:
            try:
                self.on_event(event)
            except Exception:  # one odd event must not leave the router deaf
                log.exception("routing could not take %s", type(event).__name__)

    def on_event(self, event: DomainEvent) -> None:
        if isinstance(event, IvrFinished):
            call = self._call((event.node, event.linkedid))
            call.attributes = dict(event.attributes)
            call.customer_id = event.customer_id or inputs.customer_id(event.attributes)
        elif isinstance(event, CustomerIdentified):
            self._identified(event)
        elif isinstance(event, CallQueued):
            call_state = self._calls.get((event.node, event.linkedid))
            offer = call_state.offer if call_state else None
            if call_state is not None and offer is not None:
                if event.queue == inputs.personal_queue(offer.assignment.agent_id):
                    offer.reached_agent = True
                elif event.queue in self._waiting and offer.reached_agent:
                    self._on_rang_out(event.node, event.linkedid, call_state, offer)
        elif isinstance(event, CallAnswered):
            answered = self._calls.get((event.node, event.linkedid))
            if answered is not None:
                answered.offer = None
        elif isinstance(event, CallEnded):
            self._calls.pop((event.node, event.linkedid), None)
        elif isinstance(event, AmiLinkChanged) and event.connected:
            self._beat_at = 0.0  # renew the lease at once: Asterisk may have restarted
        elif isinstance(event, AgentStateChanged):
            with contextlib.suppress(ValueError):
                state = AgentState(event.state)
                self._occupancy.update((event.node, event.agent), state, event.at.timestamp())
        self._wake.set()

    def _call(self, key: Key) -> _CallRouting:
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _CallRouting()
        return call

    def _on_rang_out(self, node: str, linkedid: str, call: _CallRouting, offer: _Offer) -> None:
        """The call came back from the agent's queue unanswered: exclude and pause that agent."""
        call.offer = None
        policy = self._policies.current()
        extension = offer.assignment.agent_id
        now = max(self._clock(), offer.assignment.at + offer.ring)
        outcome = ring_no_answer(offer.call, offer.assignment, policy, now)
        call.excluded = set(outcome.call.excluded_agents)
        call.move_to_agent = outcome.call.move_to_agent
        record = {**outcome.explanation, "node": node, "ring_timeout_s": offer.ring}
        call.no_answer.append(record)
        self._rang_out.append(
            _RangOut(node, linkedid, extension, offer.interface, outcome.agent.reason)
        )
        self._holding[(node, extension)] = self._clock()
        self.decisions.appendleft(record)
        self._publish(
            CallRangOut(
                node=node,
                linkedid=linkedid,
                extension=extension,
                reason=outcome.agent.reason,
                no_answer=list(call.no_answer),
            )
        )

    # -- deciding -----------------------------------------------------------------------------

    async def _route_forever(self) -> None:
        tick = self._settings.tick_seconds
        beat_every = self._settings.lease_seconds / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
            self._wake.clear()
            if not self._is_leader():
                self._beat_at = 0.0  # on taking the lead, renew Asterisk's heartbeat at once
                continue
            try:
                await self.route_once()
            except Exception as exc:  # a failed cycle is logged; the next one tries again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("routing cycle failed")
                continue  # and no heartbeat: a router that keeps failing lets the lease lapse
            self.last_error = ""
            if self._clock() - self._beat_at >= beat_every:
                await self._beat()

    async def _beat(self) -> None:
        now = self._clock()
        until = int(now) + self._settings.lease_seconds
        for node, link in self._links.items():
            if not link.connected:
                continue
            try:
                await execution.heartbeat(link, until)
            except (AgentActionError, AmiError, TimeoutError) as exc:
                log.warning("router heartbeat to %s failed: %s", node, exc)
        self._beat_at = now

    async def route_once(self) -> list[Assignment]:
        """One decision per node over what is true now; returns the assignments carried out."""
        policy = self._policies.current()
        await self._pause_rang_out()
        self._expire_offers()
        made: list[Assignment] = []
        for node, link in self._links.items():
            if not link.connected:
                continue
            calls = await self._waiting_calls(node, link)
            agents = await self._routed_agents(node, policy)
            self._agents[node] = agents
            if not calls or not any(a.state is AgentState.AVAILABLE for a in agents):
                continue  # nothing to decide; the next sync brings the index up to date
            index = self._indexes.setdefault(node, LiveIndex(policy))
            index.sync(calls, agents, policy)
            for assignment in index.decide(self._clock()):
                if await self._carry_out(node, link, assignment, policy):
                    made.append(assignment)
        self.cycles += 1
        return made

    async def _waiting_calls(self, node: str, link: AmiClient) -> list[WaitingCall]:
        waiting: list[WaitingCall] = []
        for queue in sorted(self._waiting):
            stats = self._tracker.queue_stats(node, queue)
            present = stats.present if stats is not None else set()
            for call in self._tracker.waiting(node, queue):
                # in the queue now: a caller between two heartbeat checks cannot be withdrawn
                if call.linkedid not in present or call.state is CallState.ANSWERED:
                    continue
                known = self._call((node, call.linkedid))
                known.queue = queue
                if known.offer is not None or self._identifying(known, call):
                    continue
                await self._learn(known, call, link)
                known.last = inputs.waiting_call(call, known.context())
                waiting.append(known.last)
        return waiting

    def _identifying(self, known: _CallRouting, call: live.Call) -> bool:
        """Who is calling is still being asked of the CRM (for at most ``identify_wait``)."""
        if known.identified or known.customer_id is not None or not call.caller_number:
            return False
        return self._clock() - call.arrived_at.timestamp() < self._identify_wait

    def _identified(self, event: CustomerIdentified) -> None:
        """The caller ID names a customer only while the IVR has not; a new customer's facts
        are read at the next decision."""
        call = self._call((event.node, event.linkedid))
        call.identified = True
        self._wake.set()  # a call held for its identification may be routed now
        by_ivr = event.by is IdentifiedBy.IVR
        if event.customer_id is None or (call.customer_id is not None and not by_ivr):
            return
        if call.customer_id != event.customer_id:
            call.customer_id = event.customer_id
            call.facts_read = False

    async def _learn(self, known: _CallRouting, call: live.Call, link: AmiClient) -> None:
        """IVR attributes (from the channel, for calls older than this router) and CRM facts."""
        if known.attributes is None:
            known.attributes = {}
            if call.arrived_at.timestamp() < self._started:
                caller = _caller_channel(call)
                with contextlib.suppress(AgentActionError, AmiError, TimeoutError):
                    known.attributes, known.waiting_since = await execution.call_attributes(
                        link, caller
                    )
                known.customer_id = inputs.customer_id(known.attributes)
        if not known.facts_read:
            known.facts_read = True
            known.facts = await self._directory.customer(known.customer_id)

    async def _routed_agents(self, node: str, policy: Policy) -> list[Agent]:
        profiles = await self._directory.agents()
        groups = frozenset(group for stage in policy.eligibility for group in stage.groups)
        ringing = {
            call.offer.assignment.agent_id
            for (call_node, _), call in self._calls.items()
            if call_node == node and call.offer is not None
        }
        now = self._clock()
        agents: dict[str, Agent] = {}
        for agent in self._tracker.all_agents(node):
            extension = inputs.routed_extension(agent)
            if extension is None or extension in agents:
                continue
            self._interfaces[(node, extension)] = agent.interface
            state: AgentState | None = None
            if extension in ringing and agent.state is AgentState.AVAILABLE:
                state = AgentState.RINGING
            held = self._holding.get((node, extension))
            if held is not None:
                if agent.state is AgentState.PAUSED or now - held > HOLD_SECONDS:
                    del self._holding[(node, extension)]
                else:
                    state = AgentState.PAUSED
            agents[extension] = inputs.router_agent(
                agent,
                extension,
                profiles.get(extension),
                occupancy=self._occupancy.of((node, agent.name), now),
                state=state,
                groups=groups,
            )
        return list(agents.values())

    # -- carrying decisions out ---------------------------------------------------------------

    async def _carry_out(
        self, node: str, link: AmiClient, assignment: Assignment, policy: Policy
    ) -> bool:
        known = self._calls.get((node, assignment.call_id))  # it may have ended meanwhile
        call = self._tracker.call(node, assignment.call_id)
        interface = self._interfaces.get((node, assignment.agent_id), "")
        if known is None or call is None or known.last is None or not interface:
            return False
        ring = execution.ring_seconds(policy.ring_no_answer.timeout)
        known.offer = _Offer(assignment, known.last, interface, ring)  # before: events may race
        try:
            await execution.offer(
                link,
                waiting_queue=known.queue,
                caller=_caller_channel(call),
                extension=assignment.agent_id,
                ring=ring,
            )
        except (AgentActionError, AmiError, TimeoutError) as exc:
            known.offer = None  # gone, or between two waits: the next cycle decides again
            log.info("offer of %s to %s not made: %s", assignment.call_id, assignment.agent_id, exc)
            return False
        decision = {
            **assignment.explanation,
            "node": node,
            "queue": known.queue,
            "ring_timeout_s": ring,
        }
        if known.move_to_agent == assignment.agent_id and known.moved_by:
            decision["moved_by"] = known.moved_by
        if known.no_answer:
            decision["no_answer"] = list(known.no_answer)
        self.decisions.appendleft(decision)
        self._publish(
            CallRouted(
                node=node,
                linkedid=assignment.call_id,
                extension=assignment.agent_id,
                rule=assignment.rule,
                decision=decision,
            )
        )
        return True

    async def _pause_rang_out(self) -> None:
        """Pause agents who let a call ring out, unless Asterisk already shows them paused or on
        another call (a call from the fallback queue rang them first: not their fault)."""
        pending, self._rang_out = self._rang_out, []
        for rang in pending:
            agent = self._tracker.agent(rang.node, rang.interface)
            link = self._links.get(rang.node)
            if agent is None or link is None or agent.state is AgentState.PAUSED:
                continue
            if agent.state is AgentState.ON_CALL and agent.linkedid != rang.linkedid:
                self._holding.pop((rang.node, rang.extension), None)
                continue
            try:
                await execution.not_ready(link, rang.interface, rang.reason)
            except (AgentActionError, AmiError, TimeoutError) as exc:
                log.warning("could not pause %s after a ring-out: %s", rang.interface, exc)

    def _expire_offers(self) -> None:
        """Offers that never reached the agent's queue (the call moved on) are given up."""
        now = self._clock()
        for call in self._calls.values():
            offer = call.offer
            if offer is None:
                continue
            limit = offer.ring + OFFER_GRACE + (60.0 if offer.reached_agent else 0.0)
            if now - offer.assignment.at > limit:
                log.warning("offer of %s to %s expired", offer.call.id, offer.assignment.agent_id)
                call.offer = None
                call.excluded.add(offer.assignment.agent_id)

    # -- supervisors --------------------------------------------------------------------------

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]:
        """Only ``agent`` may take this call from now on (waiting while they are busy); ``by``
        names the supervisor, kept in the decision that gives the call to that agent."""
        call = self._waiting_call(node, linkedid)
        if agent not in {a.id for a in self._agents.get(node, [])}:
            raise UnknownAgent(f"agent {agent} is not signed in for routing on {node}")
        call.move_to_agent = agent
        call.moved_by = by
        call.excluded.discard(agent)
        self._wake.set()
        return self._call_view(node, linkedid, call, self._policies.current(), self._clock())

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]:
        """Set the supervisor's priority change (virtual seconds, negative moves it back)."""
        call = self._waiting_call(node, linkedid)
        call.priority_adjust = adjust
        self._wake.set()
        return self._call_view(node, linkedid, call, self._policies.current(), self._clock())

    def _waiting_call(self, node: str, linkedid: str) -> _CallRouting:
        waiting = any(
            linkedid in stats.waiting
            for stats in self._tracker.all_queues(node)
            if stats.name in self._waiting
        )
        call = self._calls.get((node, linkedid))
        if call is None or not (waiting or call.offer is not None):
            raise UnknownCall(f"no call {linkedid} waits on {node}")
        return call

    def snapshot(self) -> dict[str, Any]:
        """Waiting calls with their effective priority now, agents, and the last decisions."""
        policy = self._policies.current()
        now = self._clock()
        calls = [
            self._call_view(node, linkedid, call, policy, now)
            for (node, linkedid), call in self._calls.items()
            if call.last is not None and self._is_waiting(node, linkedid, call)
        ]
        calls.sort(key=lambda view: -float(view["priority"]["effective"]))
        return {
            "policy": {
                "name": policy.name,
                "path": str(self._policies.path),
                "error": self._policies.error,
            },
            "ok": not self.last_error,
            "last_error": self.last_error,
            "waiting": calls,
            "agents": [
                _agent_view(node, agent, now)
                for node, agents in self._agents.items()
                for agent in agents
            ],
            "decisions": list(self.decisions),
        }

    def _is_waiting(self, node: str, linkedid: str, call: _CallRouting) -> bool:
        stats = self._tracker.queue_stats(node, call.queue)
        return call.offer is not None or (stats is not None and linkedid in stats.waiting)

    def _call_view(
        self, node: str, linkedid: str, call: _CallRouting, policy: Policy, now: float
    ) -> dict[str, Any]:
        current = call.last
        view: dict[str, Any] = {"node": node, "call": linkedid, "queue": call.queue}
        if current is not None:
            current = replace(
                current,
                priority_adjust=call.priority_adjust,
                move_to_agent=call.move_to_agent,
                excluded_agents=frozenset(call.excluded),
            )
            view.update(
                priority=explain.priority_terms(current, policy, now),
                skills=sorted(current.skills),
                language=current.language,
                preferred_agent=current.preferred_agent,
            )
        view.update(
            moved_to=call.move_to_agent,
            moved_by=call.moved_by or None,
            excluded=sorted(call.excluded),
            ringing=call.offer.assignment.agent_id if call.offer else None,
            no_answer=len(call.no_answer),
        )
        return view


def _agent_view(node: str, agent: Agent, now: float) -> dict[str, Any]:
    return {
        "node": node,
        "agent": agent.id,
        "state": agent.state.value,
        "skills": dict(agent.skills),
        "languages": sorted(agent.languages),
        "group": agent.group,
        "idle_s": round(now - agent.idle_since, 3),
        "occupancy": round(agent.occupancy, 3),
    }


def _caller_channel(call: live.Call) -> str:
    """The caller's own channel: the one waiting in the queue."""
    leg = call.legs.get(call.caller_uniqueid)
    return leg.channel if leg is not None else ""
