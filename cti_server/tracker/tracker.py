"""The tracker: typed AMI events in, the live model updated, domain events out on the bus.

It is fed only by events (live, replayed or synthesised by a resync), so it can be rebuilt from
Asterisk at any time, and unit-tested on recorded traffic without a PBX.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from cti_server.events import (
    AgentRinging,
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallHandling,
    CallQueued,
    CallStarted,
    CallState,
    CallTransferred,
    DomainEvent,
    HandoverKind,
    HungUpBy,
    NodeResynced,
    extension_of,
)
from cti_server.telephony import ami_events as ami
from cti_server.tracker.model import (
    AGENT_TRANSITIONS,
    CALL_TRANSITIONS,
    Agent,
    Call,
    HandoverLabel,
    Leg,
    QueueStats,
    Segment,
    move,
)

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.3
"""How long a hand-over seen live may wait for Asterisk to say how it happened (a transfer's
event comes after the bridges moved) before it is told as it is."""

Publish = Callable[[DomainEvent], None]
Clock = Callable[[], datetime]

# AST_DEVICE_* values in QueueMemberStatus
_DEVICE_IN_USE = {2, 3, 7}  # in use, busy, ring+in use
_DEVICE_RINGING = {6}
_DEVICE_FREE = {0, 1}  # not in use; unknown (a Local channel member has no device state)
_DEVICE_GONE = {4, 5}  # invalid, unavailable


def _utcnow() -> datetime:
    return datetime.now(UTC)


_HUNG_UP_BY: dict[str, HungUpBy] = {"caller": "caller", "agent": "agent", "transfer": "transfer"}
"""app_queue's AgentComplete reasons, as a call's ``hung_up_by``."""


class Tracker:
    """Calls, agents and queues of every connected Asterisk node."""

    def __init__(
        self,
        publish: Publish,
        clock: Clock = _utcnow,
        service_levels: dict[str, int] | None = None,
        wrapup_times: dict[str, int] | None = None,
    ) -> None:
        self.publish = publish
        self.clock = clock
        self._service_levels = service_levels or {}
        self._wrapup_times = wrapup_times or {}  # queue -> seconds (queues.conf wrapuptime)
        self._wrap_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._next_wrap_end: datetime | None = None
        self._calls: dict[tuple[str, str], Call] = {}
        self._ended: dict[tuple[str, str], Call] = {}  # the last 10,000 ended, for a look back
        self._agents: dict[tuple[str, str], Agent] = {}
        self._queues: dict[tuple[str, str], QueueStats] = {}
        self._leg_to_call: dict[tuple[str, str], tuple[str, str]] = {}
        # The bridges, across calls: who is with whom (a transfer's target may come from
        # another call, a Local pair may join two bridges).
        self._bridge_of: dict[tuple[str, str], str] = {}  # (node, leg) -> bridge
        self._members: dict[tuple[str, str], dict[str, int]] = {}  # (node, bridge) -> leg: entered
        self._locals: dict[tuple[str, str], str] = {}  # (node, Local channel name) -> leg
        self._connected: dict[tuple[str, str], tuple[str, str]] = {}  # leg -> (member, interface)
        self._dialing: dict[tuple[str, str], int] = {}  # leg -> its dials not ended yet
        self._unsettled: list[Call] = []  # calls with a hand-over not yet told
        self._settle_timer: asyncio.TimerHandle | None = None
        self.applied = 0
        self._resyncs: dict[str, int] = {}  # node -> how often its model was rebuilt

    # -- entry point -----------------------------------------------------------------------

    def _link_leg(self, node: str, uniqueid: str, call: Call) -> None:
        self._leg_to_call[(node, uniqueid)] = (call.node, call.linkedid)

    def apply(self, event: ami.AmiEvent, at: datetime | None = None) -> None:
        """Apply one event; ``at`` is when it happened if not now (a resync's estimate from
        the durations Asterisk reports: the model's times are then as if it had been seen)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        self.applied += 1
        if at is None:
            if self._next_wrap_end is not None:
                self.end_wrapups()
            handler(self, event)
        else:
            clock, self.clock = self.clock, lambda: at
            try:
                handler(self, event)
            finally:
                self.clock = clock
        if self._unsettled:
            if type(event) not in _BRIDGING:
                self._settle()
            if self._unsettled:
                self._settle_soon()

    def resynced(self, node: str, live: list[str], at: datetime) -> None:
        """A resync of ``node`` applied what Asterisk had at ``at`` (``live``: its calls)."""
        self._resyncs[node] = self._resyncs.get(node, 0) + 1
        self.publish(NodeResynced(node=node, live=sorted(live), at=at))

    def resync_count(self, node: str) -> int:
        """How often ``node``'s model was rebuilt from Asterisk (each AMI login)."""
        return self._resyncs.get(node, 0)

    # -- reading the model (the only way in for the other parts) --------------------------

    def call(self, node: str, linkedid: str) -> Call | None:
        """The live call, or None once it ended (see :meth:`ended_call`)."""
        return self._calls.get((node, linkedid))

    def ended_call(self, node: str, linkedid: str) -> Call | None:
        """A recently ended call (the last 10,000), for the parts that look back at one."""
        return self._ended.get((node, linkedid))

    def live_calls(self, node: str | None = None) -> list[Call]:
        return [c for c in self._calls.values() if node is None or c.node == node]

    def calls_of(self, node: str, agent: str) -> list[Call]:
        """Live calls in which ``agent`` (a queue member name, or a device such as
        ``PJSIP/1001``) is the customer's current party."""
        found = []
        for call in self._calls.values():
            if call.node != node:
                continue
            current = call.chain[-1] if call.chain else None
            who = (current.party, current.agent) if current else (call.answerer, call.agent)
            if agent in who:
                found.append(call)
        return found

    def waiting(self, node: str, queue: str) -> list[Call]:
        """Callers waiting for ``queue``, longest first."""
        stats = self._queues.get((node, queue))
        if stats is None:
            return []
        order = sorted(stats.waiting.items(), key=lambda item: item[1])
        return [c for linkedid, _ in order if (c := self._calls.get((node, linkedid)))]

    def agent(self, node: str, interface: str) -> Agent | None:
        return self._agents.get((node, interface))

    def all_agents(self, node: str | None = None) -> list[Agent]:
        return [a for a in self._agents.values() if node is None or a.node == node]

    def queue_stats(self, node: str, name: str) -> QueueStats | None:
        """The queue's figures, or None if no caller or member was ever seen in it."""
        return self._queues.get((node, name))

    def all_queues(self, node: str | None = None) -> list[QueueStats]:
        return [q for q in self._queues.values() if node is None or q.node == node]

    # -- calls -------------------------------------------------------------------------------

    def _call_of(self, event: ami.AmiEvent) -> Call | None:
        key = self._leg_to_call.get((event.node, event.uniqueid))
        if key is None:
            key = (event.node, event.linkedid)
        return self._calls.get(key)

    def _channel_created(self, event: ami.ChannelCreated) -> None:
        now = self.clock()
        key = (event.node, event.linkedid)
        call = self._calls.get(key)
        if call is None:
            if key in self._ended:
                return  # a late leg of a call that is over
            call = Call(
                node=event.node,
                linkedid=event.linkedid,
                caller_uniqueid=event.uniqueid,
                caller_number=event.caller_number,
                caller_name=event.caller_name,
                dialed=event.exten,
                arrived_at=now,
            )
            self._calls[key] = call
            self.publish(
                CallStarted(
                    node=call.node,
                    linkedid=call.linkedid,
                    caller_number=call.caller_number,
                    caller_name=call.caller_name,
                    dialed=call.dialed,
                    at=now,
                )
            )
        call.legs[event.uniqueid] = Leg(event.uniqueid, event.channel, event.state, now)
        self._leg_to_call[(event.node, event.uniqueid)] = key
        if event.channel.startswith("Local/"):
            self._locals[(event.node, event.channel)] = event.uniqueid

    def _state_changed(self, event: ami.ChannelStateChanged) -> None:
        call = self._call_of(event)
        if call is not None and event.uniqueid in call.legs:
            leg = call.legs[event.uniqueid]
            leg.state = event.state
            if event.channel and event.channel != leg.channel:
                self._rename(event.node, leg, event.channel)

    def _renamed(self, event: ami.ChannelRenamed) -> None:
        call = self._call_of(event)
        if call is not None and event.uniqueid in call.legs and event.channel:
            self._rename(event.node, call.legs[event.uniqueid], event.channel)

    def _rename(self, node: str, leg: Leg, channel: str) -> None:
        """A masquerade gave the leg another channel (and maybe another device: a pickup)."""
        if leg.channel.startswith("Local/"):
            self._locals.pop((node, leg.channel), None)
        leg.channel = channel
        if channel.startswith("Local/"):
            self._locals[(node, channel)] = leg.uniqueid

    def _callerid_changed(self, event: ami.CallerIdChanged) -> None:
        call = self._call_of(event)
        if call is not None and event.uniqueid == call.caller_uniqueid:
            call.caller_number = event.caller_number or call.caller_number
            call.caller_name = event.caller_name or call.caller_name

    def _dial_started(self, event: ami.DialStarted) -> None:
        """A leg this call dials is part of it, though it began in another call: a ringing
        consultation (a blonde transfer), or the phone of a colleague who picked the call up
        (where Asterisk says no Pickup: the rung phone's dial ends CANCEL and the same leg dials
        the picker, a phone in a call of its own)."""
        dialing = (event.node, event.uniqueid)
        self._dialing[dialing] = self._dialing.get(dialing, 0) + 1
        call = self._call_of(event)
        if call is None:
            return
        call.dialled_out = True
        key = self._leg_to_call.get((event.node, event.dest_uniqueid))
        other = self._calls.get(key) if key is not None else None
        if other is None or other is call:
            return
        if (
            event.dest_uniqueid == other.caller_uniqueid
            and not event.dest_channel.startswith("Local/")
            and not other.dialled_out
        ):
            rung = call.cancelled.get(event.uniqueid, "")
            picker = ami.device_of(event.dest_channel)
            call.label = HandoverLabel("pickup", picker, from_party=rung, merge=True)
        self._adopt(call, event.node, event.dest_uniqueid)

    def _dial_ended(self, event: ami.DialEnded) -> None:
        """Only the caller's own dial answers the call: a dial further down a chain of Local
        channels may be answered (a mobile's voicemail, a click-to-dial's agent) while the
        caller's dial ends NOANSWER or BUSY. The phone reached is found through the chain.

        The dials of a chain end in no fixed order (each half of a Local pair is its own
        thread): a far half's dial that ends ANSWER after the dial through its pair still
        names the phone reached. A Local channel whose far half reaches no phone at all (it
        answered itself, like a simulated customer or agent) stands for its party."""
        dialing = (event.node, event.uniqueid)
        if self._dialing.get(dialing, 0) > 1:
            self._dialing[dialing] -= 1
        else:
            self._dialing.pop(dialing, None)
        call = self._call_of(event)
        if call is None:
            return
        if event.status == "CANCEL" and event.dest_channel:
            call.cancelled[event.uniqueid] = ami.device_of(event.dest_channel)
        if event.status != "ANSWER":
            return
        if event.dest_channel.startswith("Local/"):
            far = self._other_local(event.node, event.dest_uniqueid)
            reached = call.reached.get(far, "")
            if far and not reached:
                call.reach_pending[far] = event.uniqueid
        else:
            reached = event.dest_uniqueid
        if reached:
            self._reach(call, event.uniqueid, reached)
        if event.uniqueid != call.caller_uniqueid:
            return
        if not reached and not call.answerer_leg and event.dest_uniqueid in call.legs:
            call.answerer_leg = event.dest_uniqueid  # until a phone is found behind it
            call.stand_ins.add(event.dest_uniqueid)
        if call.answered_at is None and move(
            call.state, CallState.ANSWERED, CALL_TRANSITIONS, "call", call.linkedid
        ):
            call.state = CallState.ANSWERED
            call.answered_at = self.clock()
            self._caller_answered(call)
            self._open_first(call)

    def _caller_answered(self, call: Call) -> None:
        """The caller side of an answered call, unless the phone first rung (an originated
        call's) is it: the caller's own leg, standing for them if it is a Local channel."""
        if call.caller_party or call.caller_uniqueid not in call.legs:
            return
        call.caller_party = call.caller_uniqueid
        if not _real(call, call.caller_uniqueid):
            call.stand_ins.add(call.caller_uniqueid)

    def _reach(self, call: Call, dialler: str, phone: str) -> None:
        """``dialler``'s answered dial reached ``phone``; so did every dial waiting on it
        through Local pairs (see :attr:`Call.reach_pending`), up to the caller's own."""
        caller_far = self._other_local(call.node, call.caller_uniqueid)
        while dialler:
            call.reached[dialler] = phone
            if dialler == caller_far and (
                not call.caller_party or call.caller_party in call.stand_ins
            ):
                call.caller_party = phone  # originated: the first phone rung, e.g. the agent
            if dialler == call.caller_uniqueid:
                if not call.answerer_leg or call.answerer_leg in call.stand_ins:
                    call.answerer_leg = phone
                if not call.answerer:
                    call.answerer = ami.device_of(_channel(call, phone))
            dialler = call.reach_pending.pop(dialler, "")
        self._sync_first(call)

    # -- hand-overs: the bridges say that the customer has a new party, events say how -------

    @staticmethod
    def _originated(call: Call) -> bool:
        """A call the agent's side placed (a click-to-dial): its caller side is the agent's
        phone, reached through the first leg's Local pair."""
        if call.chain:
            return call.originated
        return bool(call.caller_party and call.caller_party != call.caller_uniqueid)

    def _customer_leg(self, call: Call) -> str:
        """The customer's leg: the caller's, or for an originated call the side that answered."""
        if self._originated(call):
            return call.answerer_leg
        return call.caller_party or call.caller_uniqueid

    def _party_leg(self, call: Call) -> str:
        return call.caller_party if self._originated(call) else call.answerer_leg

    def _set_party_leg(self, call: Call, leg: str) -> None:
        if self._originated(call):
            call.caller_party = leg
        else:
            call.answerer_leg = leg

    def _open_first(self, call: Call) -> None:
        """The call is answered: its first party's segment begins (by a pickup or a forward
        if Asterisk said one brought the call there)."""
        if call.chain:
            return
        call.originated = self._originated(call)
        label, call.label = call.label, None
        how = label.kind if label is not None and label.kind in ("pickup", "forward") else "answer"
        segment = Segment(
            leg=self._party_leg(call),
            how=how,
            by=label.by if label is not None and how != "answer" else "",
            started_at=call.answered_at or self.clock(),
            began=self.applied,
            came_from=label.from_party if label is not None and how != "answer" else "",
        )
        call.chain.append(segment)
        self._describe(call, segment)
        if how != "answer":
            self._unsettled.append(call)

    def _sync_first(self, call: Call) -> None:
        """Until a first hand-over, the first party is whoever the answer logic found (a
        Local channel standing in may give way to the phone behind it)."""
        if len(call.chain) == 1 and not call.chain[0].fixed:
            call.chain[0].leg = self._party_leg(call) or call.chain[0].leg
            self._describe(call, call.chain[0])

    def _transferred(self, event: ami.CallTransferred) -> None:
        """Asterisk says a transfer succeeded: how the next party comes (the bridges tell when).

        The target of an attended transfer is named by ``TransferTarget*`` or, where Asterisk
        13 leaves those out, is the other channel of the consultation's bridge; it may belong to
        the consultation call (another linkedid) and joins this one."""
        call = self._call_of(event)
        if call is None:
            return
        by = ami.device_of(event.transferer_channel or _channel(call, event.uniqueid))
        if call.chain and event.uniqueid == self._customer_leg(call):
            # The caller's side handed the other over (a PBX's call, not a customer's): the one
            # transferred stays on the line, so they are the customer from now on, and the
            # transferer the party they leave.
            current = call.chain[-1]
            self._describe(call, current)
            current.fixed = True
            call.caller_party, call.answerer_leg = self._party_leg(call), event.uniqueid
            call.originated = False  # the transferee is the caller's side now
            current.leg = event.uniqueid
            current.bridge = self._bridge_of.get((event.node, self._customer_leg(call)), "")
        if event.kind == "blind":
            call.label = HandoverLabel("blind", by)
        else:
            target = event.target_uniqueid
            if not target and event.second_bridge:
                others = self._members.get((event.node, event.second_bridge), {})
                target = next(
                    (leg for leg in others if leg not in (event.second_uniqueid, event.uniqueid)),
                    "",
                )
            kind: HandoverKind = "attended"
            if event.dest_type == "App" or (target and self._leg_state(event.node, target) != "Up"):
                kind = "blonde"
            call.label = HandoverLabel(kind, by, target=target)
            if target:
                self._adopt(call, event.node, target)
        self._relabel(call)
        if event.uniqueid == self._party_leg(call) and call.chain:
            call.chain[-1].ended_at = call.chain[-1].ended_at or self.clock()
        self._check_party(call)

    def _relabel(self, call: Call) -> None:
        """A label that comes after the bridges moved (Asterisk tells a merge first) names the
        hand-over just seen, not a next one."""
        label = call.label
        if label is None or not call.chain or call not in self._unsettled:
            return
        last = call.chain[-1]
        if last.how == "redirect" and (not label.target or label.target == last.leg):
            last.how, last.by = label.kind, label.by
            call.label = None

    def _picked_up(self, event: ami.CallPickedUp) -> None:
        """A phone picked up a ringing channel of another call: it answers that call (the
        picker's own call was only the way there)."""
        key = self._leg_to_call.get((event.node, event.target_uniqueid))
        call = self._calls.get(key or (event.node, event.target_linkedid))
        if call is None:
            return
        picker = ami.device_of(event.channel)
        rung = ami.device_of(event.target_channel)
        call.label = HandoverLabel("pickup", picker, from_party=rung, merge=True)
        own = self._call_of(event)
        if own is not None and own is not call:
            own.merged_into = call.linkedid
        if call.chain:
            self._check_party(call)

    def _forwarded(self, event: ami.DialForwarded) -> None:
        call = self._call_of(event)
        if call is None:
            return
        device = ami.device_of(event.dest_channel)
        if not call.chain:  # the first party is the forward's target: from the phone that rang
            call.label = HandoverLabel("forward", device, from_party=device)
        elif call.label is None:  # the customer sent on unsaid (a Redirect), then forwarded
            call.label = HandoverLabel("redirect", device)
        # else a transfer's target forwarded: the transfer is the hand-over

    def _parked(self, event: ami.CallParked) -> None:
        """Parked by an agent, the customer waits alone; whoever takes them out of the lot
        (from a call of their own, only the way there: merged) is the next party."""
        call = self._call_of(event)
        if call is None:
            return
        parker = ami.device_of(event.parker_channel) if event.parker_channel else ""
        if not event.retrieved:
            call.label = HandoverLabel("park", parker)
        else:
            by = call.label.by if call.label is not None and call.label.kind == "park" else parker
            call.label = HandoverLabel("park", by, target=event.retriever_uniqueid, merge=True)
            self._adopt(call, event.node, event.retriever_uniqueid)

    def _leg(self, node: str, uniqueid: str) -> Leg | None:
        """A live leg, whichever call it belongs to."""
        key = self._leg_to_call.get((node, uniqueid))
        call = self._calls.get(key) if key is not None else None
        return call.legs.get(uniqueid) if call is not None else None

    def _leg_state(self, node: str, uniqueid: str) -> str:
        leg = self._leg(node, uniqueid)
        return leg.state if leg is not None else ""

    def _leg_channel(self, node: str, uniqueid: str) -> str:
        leg = self._leg(node, uniqueid)
        return leg.channel if leg is not None else ""

    def _adopt(self, call: Call, node: str, leg: str) -> None:
        """``leg`` (and the Local half behind it) takes part in ``call`` from now on, though
        it was created in another (a consultation call, a picker's call): that one ends when
        no leg of its own is left."""
        key = self._leg_to_call.get((node, leg))
        other = self._calls.get(key) if key is not None else None
        if other is None or other is call:
            return
        moved = other.legs.pop(leg, None)
        if moved is None:
            return
        call.legs[leg] = moved
        self._link_leg(node, leg, call)
        if call.label is not None and call.label.merge:
            other.merged_into = other.merged_into or call.linkedid
        elif other.answered_at is not None:
            other.hung_up_by = "transfer"
        if not other.live_legs():
            self._end_call(other, self.clock())

    def _counterpart(
        self, call: Call, side: str, current: str, wanted: str = ""
    ) -> tuple[str, set[str], bool]:
        """Whom ``side`` (a leg) is with now, through bridges and Local pairs: a phone's leg
        (``wanted``, a transfer's target, first; then ``current``; else the latest to join),
        else a Local channel standing for a party (one whose other half runs an application);
        with the Local legs passed on the way, and whether that stand-in's far half still
        dials (a target that rings: not a party yet)."""
        node = call.node
        bridge = self._bridge_of.get((node, side))
        if bridge is None:
            return "", set(), False
        skip = {side, self._other_local(node, side)}
        phones: list[tuple[int, str]] = []
        stand_ins: list[tuple[int, str]] = []
        ringing: set[str] = set()
        via: set[str] = set()
        seen_bridges = {bridge}
        todo = [bridge]
        while todo and len(seen_bridges) < 8:
            members = self._members.get((node, todo.pop()), {})
            for leg, entered in members.items():
                if leg in skip:
                    continue
                channel = self._leg_channel(node, leg)
                if not channel.startswith("Local/"):
                    phones.append((entered, leg))
                    continue
                via.add(leg)
                other = self._other_local(node, leg)
                far = self._bridge_of.get((node, other)) if other else None
                if far is None:
                    stand_ins.append((entered, leg))
                    if other and self._dialing.get((node, other)):
                        ringing.add(leg)
                elif far not in seen_bridges:
                    seen_bridges.add(far)
                    skip.add(other)
                    via.add(other)
                    todo.append(far)
        for found in (phones, stand_ins):
            if found:
                legs = [leg for _, leg in found]
                chosen = next((p for p in (wanted, current) if p and p in legs), max(found)[1])
                return chosen, via, chosen in ringing
        return "", via, False

    def _other_local(self, node: str, leg: str) -> str:
        channel = self._leg_channel(node, leg)
        base, sep, half = channel.rpartition(";")
        if not sep or not channel.startswith("Local/") or half not in ("1", "2"):
            return ""
        return self._locals.get((node, f"{base};{'2' if half == '1' else '1'}"), "")

    def _check_party(self, call: Call) -> None:
        """Has the customer a new party? Then the current segment ends and a new one begins."""
        if not call.chain or call.state == CallState.ENDED:
            return
        current = call.chain[-1]
        label = call.label
        customer = self._customer_leg(call)
        bridge = self._bridge_of.get((call.node, customer), "")
        current.bridge = current.bridge or bridge
        waiting_for = label.target if label is not None else ""
        found, via, ringing = self._counterpart(call, customer, current.leg, waiting_for)
        if not found or found == current.leg:
            return
        if ringing:  # a Local channel whose far half still dials: the target has not answered
            if label is not None and label.kind == "attended":
                label.kind = "blonde"
            return
        if waiting_for and found != waiting_for and found in via:
            return  # a blonde transfer's Local pair: the target still rings behind it
        found_device = ami.device_of(self._leg_channel(call.node, found))
        current_channel = _channel(call, current.leg) if current.leg else ""
        swapped = (  # a Local pair optimised itself away: the phone behind took its place
            current_channel.startswith("Local/")
            and (call.node, current.leg) not in self._bridge_of
            and bridge == current.bridge
        )
        if (
            current.leg in via
            or not current.leg
            or (label is None and (swapped or found_device == ami.device_of(current_channel)))
        ):
            # the phone behind a Local channel that stood in, or the same phone on a new leg
            self._adopt(call, call.node, found)
            current.leg = found
            self._set_party_leg(call, found)
            self._describe(call, current)
            return
        if label is None and bridge == current.bridge:
            # Nothing said a hand-over, and the customer is where they were: a Local channel
            # of the way to the same party (a redirect moves the customer to another bridge).
            return
        self._adopt(call, call.node, found)
        self._hand_over(call, found, label)

    def _hand_over(self, call: Call, leg: str, label: HandoverLabel | None) -> None:
        now = self.clock()
        previous = call.chain[-1]
        self._describe(call, previous)
        previous.ended_at = previous.ended_at or now
        self._segment_over(call, previous)
        call.label = None
        kind = label.kind if label is not None else "redirect"
        call.chain.append(
            Segment(
                leg=leg,
                how=kind,
                by=label.by if label is not None else "",
                started_at=now,
                began=self.applied,
                bridge=self._bridge_of.get((call.node, self._customer_leg(call)), ""),
            )
        )
        self._set_party_leg(call, leg)
        self._describe(call, call.chain[-1])
        self._agent_on(call, previous, call.chain[-1])
        if call not in self._unsettled:
            self._unsettled.append(call)

    def _agent_on(self, call: Call, left: Segment | None, took: Segment) -> None:
        """The agents' own view of the call: the one who took it over is on it, not the one
        who left (whose state the queue or their phone tells)."""
        for segment, linkedid in ((left, ""), (took, call.linkedid)):
            agent = self._agents.get((call.node, segment.party)) if segment else None
            if agent is not None and (linkedid or agent.linkedid == call.linkedid):
                agent.linkedid = linkedid

    def _describe(self, call: Call, segment: Segment) -> None:
        """Fill in who a segment's party is, from its leg (while the leg is known)."""
        if not segment.leg or segment.fixed:
            return
        channel = _channel(call, segment.leg) or self._leg_channel(call.node, segment.leg)
        if not channel:
            return
        device = ami.device_of(channel)
        segment.party = device
        segment.extension = extension_of(device)
        member = self._connected.get((call.node, segment.leg))
        if member is not None:
            segment.queued = True  # app_queue connected it: its AgentComplete ends the segment
        if member is not None and member[1].removesuffix("/n") == device:
            segment.agent = member[0]
        else:
            agent = self._agents.get((call.node, device))
            segment.agent = agent.name if agent is not None else (member[0] if member else "")

    def _segment_over(self, call: Call, segment: Segment) -> None:
        """An agent whose part of a call is over wraps up, whoever gave them the call: app_queue
        says so for the calls it connected (AgentComplete); for one taken by a transfer, a
        pickup or a forward, the agent's own wrap-up time (or the call's queue's) applies."""
        if segment.queued or segment.wrapped:
            return
        segment.wrapped = True
        agent = self._agents.get((call.node, segment.party)) if segment.party else None
        if agent is None or agent.state not in _MAY_WRAP_UP:
            return
        seconds = agent.wrapup_seconds or self._wrapup_times.get(call.queue, 0)
        if seconds and self._agent_to(agent, AgentState.WRAP_UP, ""):
            self._start_wrapup(agent, seconds)

    def _settle(self, force: bool = False) -> None:
        """Tell the hand-overs seen: after the bridges moved and Asterisk said how. A party
        that is still a Local channel waits (unless ``force``): the phone behind it is about
        to take its place (the pair optimises itself away)."""
        calls, self._unsettled = self._unsettled, []
        for call in calls:
            for index, segment in enumerate(call.chain):
                if segment.published or (index == 0 and segment.how == "answer"):
                    continue
                self._describe(call, segment)
                if segment.party.startswith("Local/") and not force:
                    if call not in self._unsettled:
                        self._unsettled.append(call)
                    break
                segment.published = True
                self._publish_handover(call, index)

    def _settle_soon(self) -> None:
        """Live, a hand-over is told at the latest shortly after it was seen, though Asterisk
        sends nothing more for a while (a replay tells it at the next event or the end)."""
        if self._settle_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._settle_timer = loop.call_later(SETTLE_SECONDS, self._settle_due)

    def _settle_due(self) -> None:
        self._settle_timer = None
        self._settle(force=True)

    def _publish_handover(self, call: Call, index: int) -> None:
        segment = call.chain[index]
        kind = segment.how
        if kind == "answer":  # the first answer is no hand-over: nothing to tell
            return
        if index > 0:
            before = call.chain[index - 1]
            if not before.party:
                self._describe(call, before)
            source = (before.party, before.extension, before.agent)
        else:  # a pickup or a forward: the phone that rang
            rung = segment.came_from
            agent = self._agents.get((call.node, rung)) if rung else None
            source = (rung, extension_of(rung), agent.name if agent else "")
        if index == 0:  # the phone that answered is the picker, the forward's target
            call.answerer = segment.party or call.answerer
            call.agent = segment.agent or ("" if segment.party else call.agent)
            self._agent_on(call, None, segment)
        self.publish(
            CallTransferred(
                node=call.node,
                linkedid=call.linkedid,
                kind=kind,
                from_party=source[0],
                from_extension=source[1],
                from_agent=source[2],
                to_party=segment.party,
                to_extension=segment.extension,
                to_agent=segment.agent,
                by=segment.by,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                queue=call.queue,
                customer_channel=_channel(call, self._customer_leg(call)),
                party_channel=_channel(call, segment.leg),
                segment=index,
                at=segment.started_at,
            )
        )

    def _bridge_entered(self, event: ami.BridgeEntered) -> None:
        call = self._call_of(event)
        if call is not None and event.uniqueid == call.caller_uniqueid:
            call.caller_bridge = event.bridge
        if not event.bridge:
            return
        self._leave_bridge(event.node, event.uniqueid)
        self._bridge_of[(event.node, event.uniqueid)] = event.bridge
        self._members.setdefault((event.node, event.bridge), {})[event.uniqueid] = self.applied
        self._follow(event.node, event.bridge)

    def _bridge_left(self, event: ami.BridgeLeft) -> None:
        call = self._call_of(event)
        if call is not None and event.bridge:
            call.bridge_leaves.setdefault(event.bridge, []).append(event.uniqueid)
            call.last_left[event.uniqueid] = self.applied
            if call.chain and event.uniqueid == call.chain[-1].leg:
                self._describe(call, call.chain[-1])
        if self._bridge_of.get((event.node, event.uniqueid)) == event.bridge:
            self._leave_bridge(event.node, event.uniqueid)
            self._follow(event.node, event.bridge)  # the one left with the customer

    def _bridges_merged(self, event: ami.BridgesMerged) -> None:
        moved = self._members.pop((event.node, event.from_bridge), {})
        into = self._members.setdefault((event.node, event.to_bridge), {})
        for leg in moved:
            into[leg] = self.applied
            self._bridge_of[(event.node, leg)] = event.to_bridge
        self._follow(event.node, event.to_bridge)

    def _leave_bridge(self, node: str, leg: str) -> None:
        bridge = self._bridge_of.pop((node, leg), None)
        if bridge is None:
            return
        members = self._members.get((node, bridge))
        if members is not None:
            members.pop(leg, None)
            if not members:
                del self._members[(node, bridge)]

    def _follow(self, node: str, bridge: str) -> None:
        """Someone joined ``bridge``: every answered customer connected to it (through Local
        pairs) may have a new party."""
        seen = {bridge}
        todo = [bridge]
        checked: set[int] = set()
        while todo and len(seen) < 8:
            for leg in list(self._members.get((node, todo.pop()), {})):
                key = self._leg_to_call.get((node, leg))
                call = self._calls.get(key) if key is not None else None
                if (
                    call is not None
                    and call.chain
                    and id(call) not in checked
                    and leg == self._customer_leg(call)
                ):
                    checked.add(id(call))
                    self._check_party(call)
                other = self._other_local(node, leg)
                far = self._bridge_of.get((node, other)) if other else None
                if far is not None and far not in seen:
                    seen.add(far)
                    todo.append(far)

    def _held(self, event: ami.ChannelHeld) -> None:
        """Hold time once answered (a phone's hold, or music: the CTI's hold, a transfer's
        consultation); the queue's music before the answer is the wait, not a hold."""
        call = self._call_of(event)
        if call is None or call.answered_at is None:
            return
        now = self.clock()
        key = (event.uniqueid, event.source)
        if event.held:
            call.holds.add(key)
            if call.held_since is None:
                call.held_since = now
        else:
            call.holds.discard(key)
            if not call.holds and call.held_since is not None:
                call.hold_seconds += (now - call.held_since).total_seconds()
                call.held_since = None

    @staticmethod
    def _first_to_leave(call: Call) -> HungUpBy:
        """ "caller" (the calling side: the caller, the agent of a click-to-dial, the one a
        caller's transfer left on the line) or "agent" (the answering side, whoever took it
        over): whose phone, or the Local channel standing for it, left its last bridge first;
        "" if either side is unknown."""
        caller = call.last_left.get(call.caller_party)
        answerer = call.last_left.get(call.answerer_leg)
        if caller is None or answerer is None:
            return ""
        return "caller" if caller < answerer else "agent"

    @staticmethod
    def _who_hung_up(call: Call) -> HungUpBy:
        """The first real phone (not a Local channel) to leave the caller's last bridge.

        Leaving a bridge is also how Local channels optimise themselves away, so only the
        caller's final bridge tells who ended the conversation.
        """
        for uniqueid in call.bridge_leaves.get(call.caller_bridge, []):
            leg = call.legs.get(uniqueid)
            if leg is None or leg.channel.startswith("Local/"):
                continue
            return "caller" if uniqueid == call.caller_uniqueid else "agent"
        return ""

    def _hung_up(self, event: ami.ChannelHungUp) -> None:
        call = self._call_of(event)
        if call is None:
            return
        now = self.clock()
        leg = call.legs.get(event.uniqueid)
        if leg is not None:
            leg.hung_up_at = now
            leg.cause = event.cause
        if call.chain and event.uniqueid == call.chain[-1].leg:
            self._describe(call, call.chain[-1])
            call.chain[-1].ended_at = call.chain[-1].ended_at or now
        self._forget_leg(event.node, event.uniqueid, leg.channel if leg is not None else "")
        if call.waits and event.uniqueid == call.waiting_leg:
            self._abandon_waits(call)
        if not call.live_legs():
            self._end_call(call, now)

    def _forget_leg(self, node: str, leg: str, channel: str) -> None:
        self._leg_to_call.pop((node, leg), None)
        self._leave_bridge(node, leg)
        self._connected.pop((node, leg), None)
        self._dialing.pop((node, leg), None)
        if channel.startswith("Local/") and self._locals.get((node, channel)) == leg:
            del self._locals[(node, channel)]

    def _close_chain(self, call: Call, now: datetime) -> None:
        """The call is over: its segments end, its last party wraps up, who hung up is known."""
        for segment in call.chain:
            if not segment.party or not segment.agent:
                self._describe(call, segment)
            segment.ended_at = segment.ended_at or now
        if call.chain and not call.merged_into:
            self._segment_over(call, call.chain[-1])
        if call.answered_at is not None and (not call.hung_up_by or len(call.chain) > 1):
            # app_queue's AgentComplete tells how the first agent's part ended (by a transfer,
            # or "agent": the transferer hung up to complete it), not how the call did
            call.hung_up_by = (
                self._first_to_leave(call)
                or self._who_hung_up(call)
                or ("system" if call.hung_up_by in ("", "transfer") else call.hung_up_by)
            )
        if call.held_since is not None:
            call.hold_seconds += (now - call.held_since).total_seconds()
            call.held_since = None

    def _end_call(self, call: Call, now: datetime) -> None:
        if not move(call.state, CallState.ENDED, CALL_TRANSITIONS, "call", call.linkedid):
            return
        if call in self._unsettled:
            self._settle(force=True)
        call.state = CallState.ENDED
        call.ended_at = now
        self._close_chain(call, now)
        key = (call.node, call.linkedid)
        self._calls.pop(key, None)
        self._ended[key] = call
        if len(self._ended) > 10000:
            self._ended.pop(next(iter(self._ended)))
        if call.waits and call.answered_at is None:
            self._abandon_waits(call)  # its waiting channel's hang-up was not seen
        call.waits.clear()
        for stats in self._queues.values():
            stats.waiting.pop(call.linkedid, None)
            stats.present.discard(call.linkedid)
        for leg in call.legs.values():
            if self._leg_to_call.get((call.node, leg.uniqueid)) == key:
                self._forget_leg(call.node, leg.uniqueid, leg.channel)
        if call.answered_at is not None and not call.merged_into:
            self.publish(
                CallHandling(
                    node=call.node,
                    linkedid=call.linkedid,
                    hold_seconds=round(call.hold_seconds, 1),
                    transfers=max(0, len(call.chain) - 1),
                    returns=call.returns,
                    at=now,
                )
            )
        self.publish(
            CallEnded(
                node=call.node,
                linkedid=call.linkedid,
                outcome="merged" if call.merged_into else call.outcome,
                hung_up_by=call.hung_up_by if call.answered_at and not call.merged_into else "",
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                dialed=call.dialed,
                queue=call.queue,
                agent=call.agent or call.answerer,
                arrived_at=call.arrived_at,
                queued_at=call.queued_at,
                offered_at=call.offered_at,
                answered_at=call.answered_at,
                chain=call.chain_dicts(),
                merged_into=call.merged_into,
                at=now,
            )
        )

    # -- queues ------------------------------------------------------------------------------

    def _queue(self, node: str, name: str) -> QueueStats:
        stats = self._queues.get((node, name))
        if stats is None:
            stats = QueueStats(node, name, self._service_levels.get(name, 20))
            self._queues[(node, name)] = stats
        return stats

    def _caller_joined(self, event: ami.QueueCallerJoined) -> None:
        call = self._call_of(event)
        if call is None:
            return
        now = self.clock()
        self._join_wait(call, event.queue, now)
        call.waiting_leg = event.uniqueid
        call.queue = event.queue
        call.queued_at = call.queued_at or now
        if move(call.state, CallState.QUEUED, CALL_TRANSITIONS, "call", call.linkedid):
            call.state = CallState.QUEUED
        self.publish(
            CallQueued(
                node=call.node,
                linkedid=call.linkedid,
                queue=event.queue,
                position=event.position,
                at=now,
            )
        )

    def _join_wait(self, call: Call, queue: str, joined: datetime) -> None:
        """The caller is in ``queue`` (again): a new wait for it, or the same wait going on.

        Back in a queue they were already waiting for (a heartbeat re-entry, a ring-out back to
        the waiting queue), the wait goes on from its start, and the queues they went on to
        from it (the agent's queue that rang out) are left behind, neither answered nor
        abandoned.
        """
        stats = self._queue(call.node, queue)
        if queue in call.waits:
            for inner in call.waits[call.waits.index(queue) + 1 :]:
                self._drop_wait(call, inner)
            del call.waits[call.waits.index(queue) + 1 :]
        else:
            if queue not in call.answered_in:  # transferred back to a queue that answered it
                stats.offered += 1
            stats.waiting[call.linkedid] = joined
            call.waits.append(queue)
        stats.present.add(call.linkedid)

    def _drop_wait(self, call: Call, queue: str) -> QueueStats:
        stats = self._queue(call.node, queue)
        stats.waiting.pop(call.linkedid, None)
        stats.present.discard(call.linkedid)
        return stats

    def _caller_left(self, event: ami.QueueCallerLeft) -> None:
        call = self._call_of(event)
        if call is not None:
            self._queue(event.node, event.queue).present.discard(call.linkedid)

    def _caller_abandoned(self, event: ami.QueueCallerAbandoned) -> None:
        """app_queue says this whenever a caller leaves unanswered: a hang-up, but also a
        withdraw (routing) or a ``Queue()`` timeout, after which the dialplan goes on. Only the
        waiting channel's hang-up (see :meth:`_abandon_waits`) makes it an abandon."""
        call = self._call_of(event)
        stats = self._queue(event.node, event.queue)
        if call is None:  # a call we never saw: nothing to wait for, take app_queue's word
            stats.abandoned += 1
            return
        stats.present.discard(call.linkedid)
        call.queue = call.queue or event.queue
        if event.queue not in call.waits:  # its join was missed (the model was rebuilt since)
            stats.offered += 1
            stats.waiting[call.linkedid] = self.clock() - timedelta(seconds=event.hold_seconds)
            call.waits.append(event.queue)
        call.waiting_leg = call.waiting_leg or event.uniqueid

    def _abandon_waits(self, call: Call) -> None:
        """The caller hung up while waiting: an abandon in every queue they waited for."""
        for queue in call.waits:
            stats = self._drop_wait(call, queue)
            if queue not in call.answered_in:  # one call, answered there once: no abandon
                stats.abandoned += 1
                call.abandoned = True
        call.waits.clear()

    def _answer_waits(
        self, call: Call, answered_in: str, hold_seconds: float, at: datetime | None = None
    ) -> float:
        """An agent answered (``at``, if not now: a resync's estimate): answered in every queue
        the caller waited for, each with the whole wait for it; returns the longest (the
        caller's wait)."""
        now = at or self.clock()
        if answered_in not in call.waits:  # its join was missed (the model was rebuilt since)
            self._queue(call.node, answered_in).waiting.setdefault(
                call.linkedid, now - timedelta(seconds=hold_seconds)
            )
            call.waits.append(answered_in)
        longest = 0.0
        for queue in call.waits:
            stats = self._queue(call.node, queue)
            began = stats.waiting.get(call.linkedid, now)
            waited = max(float(hold_seconds), (now - began).total_seconds())
            if queue not in call.answered_in:  # a transferred call is answered once in a queue
                stats.record_answer(waited)
                call.answered_in.add(queue)
            self._drop_wait(call, queue)
            longest = max(longest, waited)
        call.waits.clear()
        return longest

    def _agent_called(self, event: ami.AgentCalled) -> None:
        call = self._call_of(event)
        if call is None:
            return
        now = self.clock()
        call.offered_at = call.offered_at or now
        if move(call.state, CallState.OFFERED, CALL_TRANSITIONS, "call", call.linkedid):
            call.state = CallState.OFFERED
        agent = self._agent(event.node, event.interface, event.member)
        agent.linkedid = call.linkedid
        self._agent_to(agent, AgentState.RINGING, "", now)
        self.publish(
            AgentRinging(
                node=call.node,
                linkedid=call.linkedid,
                queue=event.queue,
                agent=agent.name,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                at=now,
            )
        )

    def _agent_no_answer(self, event: ami.AgentNoAnswer) -> None:
        call = self._call_of(event)
        if call is not None and move(
            call.state, CallState.QUEUED, CALL_TRANSITIONS, "call", call.linkedid
        ):
            call.state = CallState.QUEUED
        agent = self._agent(event.node, event.interface, event.member)
        if agent.state == AgentState.RINGING:
            self._agent_to(agent, AgentState.AVAILABLE, "no answer")

    def _agent_connected(self, event: ami.AgentConnected) -> None:
        call = self._call_of(event)
        now = self.clock()
        agent = self._agent(event.node, event.interface, event.member)
        if call is not None and event.dest_uniqueid:
            # the leg the queue connected is part of the call, from whatever call it came (a
            # colleague's phone that picked up the ringing member's call has its own)
            self._adopt(call, event.node, event.dest_uniqueid)
            device = ami.device_of(_channel(call, event.dest_uniqueid))
            answering = self._agents.get((event.node, device))
            if answering is not None and device != event.interface.removesuffix("/n"):
                agent = answering  # the phone that answered is another member's
        agent.calls_taken += 1
        if event.dest_uniqueid:
            self._connected[(event.node, event.dest_uniqueid)] = (agent.name, agent.interface)
        if call is None:
            stats = self._queue(event.node, event.queue)
            stats.record_answer(event.hold_seconds)
            self._agent_to(agent, AgentState.ON_CALL, "")
            return
        waited = self._answer_waits(call, event.queue, event.hold_seconds)
        if not call.answerer_leg and event.dest_uniqueid in call.legs:
            # no answered dial of the caller's was seen: the agent's leg is the answerer
            call.answerer_leg = event.dest_uniqueid
            if not _real(call, event.dest_uniqueid):
                call.stand_ins.add(event.dest_uniqueid)
        if call.answered_at is None:
            self._caller_answered(call)
        self._agent_to(agent, AgentState.ON_CALL, "")
        agent.linkedid = call.linkedid
        if move(call.state, CallState.ANSWERED, CALL_TRANSITIONS, "call", call.linkedid):
            call.state = CallState.ANSWERED
        label = call.label
        if call.queue_answered or (
            call.chain
            and (
                len(call.chain) > 1
                or (label is not None and label.kind not in ("pickup", "forward"))
            )
        ):
            # answered again, after a transfer to a queue: a hand-over, not an answer
            self._check_party(call)
            return
        call.queue_answered = True
        call.queue = event.queue
        call.answered_at = call.answered_at or now
        self._open_first(call)
        first = call.chain[0]
        if first.how in ("pickup", "forward"):  # the phone that answered is not the member's
            self._describe(call, first)
        call.agent = (first.agent if first.how != "answer" else "") or agent.name
        self.publish(
            CallAnswered(
                node=call.node,
                linkedid=call.linkedid,
                queue=event.queue,
                agent=call.agent,
                waited_seconds=waited,
                at=now,
                caller_channel=_channel(call, call.caller_uniqueid),
                agent_channel=_channel(call, event.dest_uniqueid),
            )
        )

    def _found_answered(self, event: ami.CallFoundAnswered) -> None:
        """A resync found the caller talking though no answer was seen: answered by the party
        in its bridge (at the estimated time the event is applied at), in its queue if any,
        counted there only if its wait was; told as ``CallAnswered``. Found so again after a
        transfer to a queue, it is answered again (the state), not told twice."""
        call = self._call_of(event)
        if call is None:
            return
        now = self.clock()
        if call.answered_at is None:
            self._dial_ended(
                ami.DialEnded(
                    node=event.node,
                    uniqueid=call.caller_uniqueid,
                    linkedid=call.linkedid,
                    dest_uniqueid=event.party_uniqueid,
                    dest_channel=event.party_channel,
                    status="ANSWER",
                )
            )
            call.queue = call.queue or event.queue  # its join was missed
            call.answered_at = call.answered_at or now
            if call.waits:
                self._answer_waits(call, call.waits[-1], 0, at=now)
            call.queue_answered = True
            self.publish(
                CallAnswered(
                    node=call.node,
                    linkedid=call.linkedid,
                    queue=call.queue,
                    agent=call.agent,
                    waited_seconds=(now - (call.queued_at or call.arrived_at)).total_seconds(),
                    at=now,
                    caller_channel=_channel(call, call.caller_uniqueid),
                    agent_channel=event.party_channel,
                )
            )
        if move(call.state, CallState.ANSWERED, CALL_TRANSITIONS, "call", call.linkedid):
            call.state = CallState.ANSWERED

    def _agent_completed(self, event: ami.AgentCompleted) -> None:
        """The agent's call is over: wrap-up for the queue's time (app_queue offers them no
        call until it has passed), else available."""
        stats = self._queue(event.node, event.queue)
        stats.record_completed(event.talk_seconds)
        call = self._call_of(event) or self._ended.get((event.node, event.linkedid))
        if call is not None:
            call.hung_up_by = _HUNG_UP_BY.get(event.reason, call.hung_up_by)
        agent = self._agent(event.node, event.interface, event.member)
        agent.linkedid = ""
        wrapup = agent.wrapup_seconds or self._wrapup_times.get(event.queue, 0)
        if wrapup and agent.state not in (AgentState.PAUSED, AgentState.RINGING):
            self._agent_to(agent, AgentState.WRAP_UP, "")  # illegal if logged out: logged
            if agent.state == AgentState.WRAP_UP:
                self._start_wrapup(agent, wrapup)
        elif agent.state == AgentState.ON_CALL:
            self._agent_to(agent, AgentState.AVAILABLE, "")

    def _start_wrapup(self, agent: Agent, seconds: int) -> None:
        """Asterisk says nothing when a wrap-up ends: a timer does (or the next event after
        its end, when no event loop runs, as in a replay)."""
        agent.wrapup_until = self.clock() + timedelta(seconds=seconds)
        if self._next_wrap_end is None or agent.wrapup_until < self._next_wrap_end:
            self._next_wrap_end = agent.wrapup_until
        key = (agent.node, agent.interface)
        self._cancel_wrap_timer(key)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wrap_timers[key] = loop.call_later(seconds, self._wrapup_over, key)

    def _wrapup_over(self, key: tuple[str, str]) -> None:
        self._wrap_timers.pop(key, None)
        agent = self._agents.get(key)
        if agent is not None and agent.state == AgentState.WRAP_UP:
            self._agent_to(agent, AgentState.AVAILABLE, "")

    def _cancel_wrap_timer(self, key: tuple[str, str]) -> None:
        timer = self._wrap_timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def end_wrapups(self) -> None:
        """Agents whose wrap-up time has passed are available again."""
        now = self.clock()
        if self._next_wrap_end is None or now < self._next_wrap_end:
            return
        self._next_wrap_end = None
        for agent in self._agents.values():
            if agent.state != AgentState.WRAP_UP or agent.wrapup_until is None:
                continue
            if agent.wrapup_until <= now:
                self._wrapup_over((agent.node, agent.interface))
            elif self._next_wrap_end is None or agent.wrapup_until < self._next_wrap_end:
                self._next_wrap_end = agent.wrapup_until

    # -- agents ------------------------------------------------------------------------------

    def _agent(self, node: str, interface: str, name: str) -> Agent:
        agent = self._agents.get((node, interface))
        if agent is None:
            agent = Agent(node=node, interface=interface, name=name or interface)
            self._agents[(node, interface)] = agent
        return agent

    def _agent_to(
        self, agent: Agent, state: AgentState, reason: str, now: datetime | None = None
    ) -> bool:
        """Move the agent (and tell it); False if that step is not one an agent can take.
        ``now``: the event's time, if read already (one clock read per event)."""
        if agent.state == state and agent.reason == reason:
            return True
        if agent.state != state and not move(
            agent.state, state, AGENT_TRANSITIONS, "agent", agent.name
        ):
            return False
        if agent.state == AgentState.WRAP_UP and state != AgentState.WRAP_UP:
            agent.wrapup_until = None
            self._cancel_wrap_timer((agent.node, agent.interface))
        agent.state = state
        agent.reason = reason
        agent.since = now or self.clock()
        self.publish(
            AgentStateChanged(
                node=agent.node,
                agent=agent.name,
                state=str(state),  # its value (a StrEnum's str), without the enum's descriptor
                reason=reason,
                linkedid=agent.linkedid,
                at=agent.since,
            )
        )
        return True

    def _member_changed(self, event: ami.QueueMemberChanged) -> None:
        """Asterisk's word on a member. While in wrap-up a phone that is idle says nothing new
        (app_queue still holds calls back); ringing, a call, a pause or a removal end it."""
        agent = self._agent(event.node, event.interface, event.member)
        if event.wrapup_seconds:
            agent.wrapup_seconds = event.wrapup_seconds
        if event.change == "removed":
            agent.queues.discard(event.queue)
            if not agent.queues:
                self._agent_to(agent, AgentState.LOGGED_OUT, "")
            return
        agent.queues.add(event.queue)
        if event.paused:
            self._agent_to(agent, AgentState.PAUSED, event.pause_reason)
        elif event.device_status in _DEVICE_GONE:
            self._agent_to(agent, AgentState.LOGGED_OUT, "device unavailable")
        elif event.device_status in _DEVICE_RINGING:
            self._agent_to(agent, AgentState.RINGING, "")
        elif (
            event.in_call and agent.state != AgentState.WRAP_UP  # the call just completed
        ) or event.device_status in _DEVICE_IN_USE:
            self._agent_to(agent, AgentState.ON_CALL, "")
        elif agent.state in (AgentState.PAUSED, AgentState.LOGGED_OUT) or (
            event.device_status in _DEVICE_FREE and agent.state != AgentState.WRAP_UP
        ):
            self._agent_to(agent, AgentState.AVAILABLE, "")

    # -- views -------------------------------------------------------------------------------

    def estimated_wait(self, node: str, queue: str) -> float:
        """Seconds a caller joining ``queue`` now may wait: callers ahead x handle time / agents.

        With nobody staffing the queue the caller waits for at least one handle time.
        """
        stats = self._queues.get((node, queue))
        ahead = len(stats.waiting) if stats is not None else 0
        handle = stats.aht if stats is not None and stats.aht else 180.0
        staffed = sum(
            1
            for agent in self._agents.values()
            if agent.node == node
            and queue in agent.queues
            and agent.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED)
        )
        if staffed == 0:
            return (ahead + 1) * handle
        return ahead * handle / staffed

    def snapshot(self) -> dict[str, Any]:
        """Everything a wallboard shows, JSON-ready."""
        self.end_wrapups()
        now = self.clock()
        return {
            "calls": [
                {
                    "node": c.node,
                    "linkedid": c.linkedid,
                    "state": c.state.value,
                    "caller_number": c.caller_number,
                    "caller_name": c.caller_name,
                    "queue": c.queue,
                    "waits": list(c.waits),  # queues the caller waits for, outermost first
                    "agent": (c.chain[-1].agent or c.chain[-1].extension) if c.chain else c.agent,
                    "party": c.party,  # whom the customer talks to now (after hand-overs)
                    "answered_by": c.agent or c.answerer,  # the first answerer
                    "transfers": max(0, len(c.chain) - 1),
                    "since": c.arrived_at.isoformat(),
                }
                for c in self._calls.values()
            ],
            "agents": [
                {
                    "node": a.node,
                    "agent": a.name,
                    "interface": a.interface,
                    "state": a.state.value,
                    "reason": a.reason,
                    "since": a.since.isoformat() if a.since else None,
                    "queues": sorted(a.queues),
                    "linkedid": a.linkedid,
                }
                for a in self._agents.values()
            ],
            "queues": [
                {
                    "node": q.node,
                    "queue": q.name,
                    "waiting": len(q.waiting),
                    "longest_wait": round(q.longest_wait(now), 1),
                    "offered": q.offered,
                    "answered": q.answered,
                    "abandoned": q.abandoned,
                    "service_level": round(q.service_level, 3),
                    "asa": round(q.asa, 1),
                    "aht": round(q.aht, 1),
                    "abandon_rate": round(q.abandon_rate, 3),
                }
                for q in self._queues.values()
            ],
        }

    _handlers: ClassVar[dict[type[ami.AmiEvent], Callable[[Tracker, Any], None]]] = {
        ami.ChannelCreated: _channel_created,
        ami.ChannelStateChanged: _state_changed,
        ami.CallerIdChanged: _callerid_changed,
        ami.ChannelHungUp: _hung_up,
        ami.DialStarted: _dial_started,
        ami.DialEnded: _dial_ended,
        ami.BridgeEntered: _bridge_entered,
        ami.BridgeLeft: _bridge_left,
        ami.QueueCallerJoined: _caller_joined,
        ami.QueueCallerLeft: _caller_left,
        ami.QueueCallerAbandoned: _caller_abandoned,
        ami.AgentCalled: _agent_called,
        ami.AgentNoAnswer: _agent_no_answer,
        ami.AgentConnected: _agent_connected,
        ami.AgentCompleted: _agent_completed,
        ami.QueueMemberChanged: _member_changed,
        ami.CallTransferred: _transferred,
        ami.CallPickedUp: _picked_up,
        ami.CallFoundAnswered: _found_answered,
        ami.ChannelRenamed: _renamed,
        ami.DialForwarded: _forwarded,
        ami.BridgesMerged: _bridges_merged,
        ami.CallParked: _parked,
        ami.ChannelHeld: _held,
    }


_MAY_WRAP_UP = frozenset({AgentState.ON_CALL, AgentState.AVAILABLE})

_BRIDGING: frozenset[type[ami.AmiEvent]] = frozenset(
    {ami.BridgeEntered, ami.BridgeLeft, ami.BridgesMerged, ami.ChannelRenamed}
)
"""Events after which a hand-over is not told yet: Asterisk may say how it happened next."""


def _channel(call: Call, uniqueid: str) -> str:
    leg = call.legs.get(uniqueid)
    return leg.channel if leg is not None else ""


def _real(call: Call, uniqueid: str) -> str:
    """``uniqueid`` if it is a phone's leg (not a Local channel), else ""."""
    channel = _channel(call, uniqueid)
    return uniqueid if channel and not channel.startswith("Local/") else ""
