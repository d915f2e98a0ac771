"""Internal domain events in, public events out, with who may see each.

One translator per process, fed in the order the bus delivers. It remembers, per call, the caller,
the customer identified, and the agents who answered, because the public events carry what the
internal ones leave to other parts (the customer on every call event, the agent on a complaint)
and because who may see an event depends on who had the call.

Hand-overs come from the tracker's ``CallTransferred``, whatever made them (the desktop, a
phone's feature code, a SIP REFER, another AMI client, a pickup, a forwarding phone, an AMI
``Redirect``): one ``call.transferred`` each, with the party the customer left and the one who
talks to them now. An answered call that goes back into a queue is announced as it waits
(``to_queue`` with ``to_agent`` null), and again when a party takes it out of the queue (the
same ``to_queue`` and the new ``to_agent``). A second ``CallAnswered`` is no longer read as a
transfer: the tracker says so itself, also where no queue is involved.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol, get_args

from cti_server import events as internal
from cti_server.events import CallKey
from cti_server.integrations import events as public

MAX_CALLS = 20000  # live calls followed; the oldest forgotten when their end is never seen
MAX_ENDED = 10000  # ended calls kept for complaints judged after the call
_EXTENSION = re.compile(r"(\d{2,10})$")
_CATEGORIES = frozenset(get_args(public.Category))
_SEVERITIES = frozenset(get_args(public.Severity))
_OUTCOMES = frozenset(get_args(public.Outcome))
_HUNG_UP_BY = frozenset(get_args(public.HungUpBy))
_EVIDENCE = frozenset({"cue", "model", "fact"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A public event, its JSON text (made once for every receiver), and whose call it is."""

    event: public.AnyEvent
    agents: frozenset[str]  # extensions of the agents who may see it (see ``access``)
    text: str

    @property
    def type(self) -> str:
        return self.event.type

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.text)
        return body


class Receiver(Protocol):
    """Where public events go (a stream client): it keeps what it may see and asked for."""

    def offer(self, outgoing: Outgoing) -> None: ...


def agent_of(member: str) -> public.Agent:
    """``agent-1001`` (a queue member name) → its extension ``1001``."""
    match = _EXTENSION.search(member)
    return public.Agent(member=member, extension=match.group(1) if match else None)


def party_of(agent: str, extension: str, device: str) -> public.Agent | None:
    """A party of a hand-over as the public events name agents: the queue member name when
    the party is one, else its device (``PJSIP/1002``); None when the tracker knows neither."""
    if not (agent or device):
        return None
    known = agent_of(agent or device)
    return public.Agent(member=known.member, extension=extension or known.extension)


@dataclass
class _PublicCall:
    """One call as the public stream has told it so far: caller, customer, who has it."""

    caller: public.Caller
    dialed: str
    customer: public.Customer | None = None
    answerer: public.Agent | None = None  # who has the call now
    answered_by: set[str] = field(default_factory=set)  # extensions, for who may see it
    last_agent: public.Agent | None = None
    requeued: str | None = None  # the queue an answered call went back into, until taken
    handed_over: bool = False  # a party took it over: CallEnded.agent is no longer the last


class Translator:
    """Stateful: feed it every event in bus order; it returns the public events to send."""

    def __init__(self) -> None:
        self._calls: OrderedDict[CallKey, _PublicCall] = OrderedDict()
        self._ended: OrderedDict[CallKey, _PublicCall] = OrderedDict()

    def identified(self, key: CallKey, customer: public.Customer | None) -> None:
        """The customer of a call, once the CRM said who the caller is (None: nobody known)."""
        if customer is not None:
            self._call(*key).customer = customer

    def translate(self, event: internal.DomainEvent) -> list[Outgoing]:  # noqa: PLR0911
        match event:
            case internal.CallArrived() | internal.CallStarted():
                return self._arrived(event)
            case internal.AgentRinging():
                return self._ringing(event)
            case internal.CallQueued():
                return self._queued(event)
            case internal.CallAnswered():
                return self._answered(event)
            case internal.CallTransferred():
                return self._handed_over(event)
            case internal.CallEnded():
                return self._ended_call(event)
            case internal.ComplaintDetected():
                return self._complaint(event)
        return []

    # -- calls --------------------------------------------------------------------------------

    def _call(self, node: str, linkedid: str, number: str = "", name: str = "") -> _PublicCall:
        key = CallKey(node, linkedid)
        call = self._calls.get(key)
        if call is None:
            call = _PublicCall(public.Caller(number=number, name=name), dialed="")
            self._calls[key] = call
            if len(self._calls) > MAX_CALLS:
                self._calls.popitem(last=False)
        return call

    def _arrived(self, event: internal.CallArrived | internal.CallStarted) -> list[Outgoing]:
        call = self._call(event.node, event.linkedid)
        if event.caller_number or event.caller_name:
            call.caller = public.Caller(number=event.caller_number, name=event.caller_name)
        call.dialed = event.dialed or call.dialed
        if isinstance(event, internal.CallStarted):
            return []  # the tracker's first channel: known, not announced (CallArrived is)
        data = public.CallArrivedData(
            call_id=event.linkedid, caller=call.caller, dialed=event.dialed, customer=call.customer
        )
        return [_out(public.CallArrived(time=event.at, node=event.node, data=data), set())]

    def _ringing(self, event: internal.AgentRinging) -> list[Outgoing]:
        call = self._call(event.node, event.linkedid, event.caller_number, event.caller_name)
        agent = agent_of(event.agent)
        data = public.CallRingingData(
            call_id=event.linkedid,
            queue=event.queue,
            agent=agent,
            caller=call.caller,
            customer=call.customer,
        )
        event_out = public.CallRinging(time=event.at, node=event.node, data=data)
        return [_out(event_out, {agent.extension} if agent.extension else set())]

    def _queued(self, event: internal.CallQueued) -> list[Outgoing]:
        """An answered call back in a queue: its agent left it, nobody has it yet."""
        call = self._call(event.node, event.linkedid)
        source = call.answerer
        if source is None:
            return []
        call.answerer = None
        call.requeued = event.queue
        data = public.CallTransferredData(
            call_id=event.linkedid,
            from_agent=source,
            to_queue=event.queue,
            to_agent=None,
            customer=call.customer,
        )
        event_out = public.CallTransferred(time=event.at, node=event.node, data=data)
        return [_out(event_out, {source.extension} if source.extension else set())]

    def _answered(self, event: internal.CallAnswered) -> list[Outgoing]:
        call = self._call(event.node, event.linkedid)
        agent = agent_of(event.agent)
        call.answerer = call.last_agent = agent
        call.requeued = None
        if agent.extension:
            call.answered_by.add(agent.extension)
        data = public.CallAnsweredData(
            call_id=event.linkedid,
            queue=event.queue,
            agent=agent,
            waited_seconds=max(0.0, event.waited_seconds),
            customer=call.customer,
        )
        event_out = public.CallAnswered(time=event.at, node=event.node, data=data)
        return [_out(event_out, {agent.extension} if agent.extension else set())]

    def _handed_over(self, event: internal.CallTransferred) -> list[Outgoing]:
        """A new party took the customer over: both parties' agents may see it, and both may
        see the rest of the call (its end, its complaints)."""
        call = self._call(event.node, event.linkedid, event.caller_number, event.caller_name)
        source = (
            party_of(event.from_agent, event.from_extension, event.from_party)
            or call.answerer
            or call.last_agent
            or public.Agent(member="", extension=None)
        )
        target = party_of(event.to_agent, event.to_extension, event.to_party)
        data = public.CallTransferredData(
            call_id=event.linkedid,
            from_agent=source,
            to_queue=call.requeued,
            to_agent=target,
            customer=call.customer,
        )
        call.requeued = None
        call.handed_over = True
        if target is not None:
            call.answerer = call.last_agent = target
        seen_by = {a.extension for a in (source, target) if a is not None and a.extension}
        call.answered_by |= seen_by
        return [_out(public.CallTransferred(time=event.at, node=event.node, data=data), seen_by)]

    def _ended_call(self, event: internal.CallEnded) -> list[Outgoing]:
        key = CallKey.of(event)
        call = self._calls.pop(key, None) or _PublicCall(
            public.Caller(number=event.caller_number, name=event.caller_name), event.dialed
        )
        agent = _last_party(event.chain) or (
            call.last_agent if call.handed_over or not event.agent else agent_of(event.agent)
        )
        if agent is not None and event.answered_at is not None and agent.extension:
            call.answered_by.add(agent.extension)
        call.answered_by |= {p.extension for p in _parties(event.chain) if p.extension}
        call.last_agent = agent if event.answered_at is not None else None
        self._ended[key] = call
        if len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)
        hung_up_by = event.hung_up_by if event.hung_up_by in _HUNG_UP_BY else None
        data = public.CallEndedData(
            call_id=event.linkedid,
            outcome=event.outcome if event.outcome in _OUTCOMES else "unanswered",
            hung_up_by=hung_up_by,
            caller=public.Caller(number=event.caller_number, name=event.caller_name),
            dialed=event.dialed,
            queue=event.queue or None,
            agent=call.last_agent,
            customer=call.customer,
            arrived_at=event.arrived_at,
            queued_at=event.queued_at,
            answered_at=event.answered_at,
            ended_at=event.at,
        )
        return [_out(public.CallEnded(time=event.at, node=event.node, data=data), call.answered_by)]

    def _complaint(self, event: internal.ComplaintDetected) -> list[Outgoing]:
        key = CallKey.of(event)
        call = self._calls.get(key) or self._ended.get(key)
        data = public.ComplaintDetectedData(
            call_id=event.linkedid,
            during_call=event.during_call,
            probability=min(1.0, max(0.0, event.probability)),
            threshold=min(1.0, max(0.0, event.threshold)),
            category=event.category if event.category in _CATEGORIES else "other",
            severity=event.severity if event.severity in _SEVERITIES else "medium",
            language=event.language,
            agent=(call.answerer or call.last_agent) if call is not None else None,
            customer=call.customer if call is not None else None,
            evidence=[_evidence(e) for e in event.evidence if e.get("kind") in _EVIDENCE],
        )
        event_out = public.ComplaintDetected(time=event.at, node=event.node, data=data)
        return [_out(event_out, call.answered_by if call is not None else set())]


def _parties(chain: list[dict[str, Any]]) -> list[public.Agent]:
    """The parties the customer talked to, in order, from ``CallEnded.chain`` (v2)."""
    found = (
        party_of(
            str(part.get("agent") or ""),
            str(part.get("extension") or ""),
            str(part.get("party") or ""),
        )
        for part in chain
        if isinstance(part, dict)
    )
    return [party for party in found if party is not None]


def _last_party(chain: list[dict[str, Any]]) -> public.Agent | None:
    parties = _parties(chain)
    return parties[-1] if parties else None


def _evidence(stored: dict[str, Any]) -> public.Evidence:
    start, end = stored.get("start"), stored.get("end")
    return public.Evidence(
        kind=stored["kind"],
        cue=str(stored.get("cue", "")),
        weight=float(stored.get("weight", 0.0)),
        text=str(stored.get("text", "")),
        start=float(start) if start is not None else None,
        end=float(end) if end is not None else None,
    )


def _out(event: public.AnyEvent, agents: set[str]) -> Outgoing:
    return Outgoing(event, frozenset(agents), event.model_dump_json())
