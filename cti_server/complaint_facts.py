"""Two call facts the complaint detector weighs, read from Asterisk's events: how long the
customer was on hold once answered, and how often a transfer passed them back to a party they
had already left ("transfers back and forth").

Per node, beside the tracker: it sees the same typed AMI events and publishes one
``CallHandling`` when the customer's channel (the call's first, whose uniqueid is the linkedid)
hangs up. Hold is the time any hold of the call is on (a phone's Hold, or music on hold: the
CTI's hold, a transfer's consultation), counted only after the call was answered so that the
queue's music is not taken for it. A party is the device of a channel that joins the customer
in a bridge (``PJSIP/1001-0000002a`` → ``PJSIP/1001``), or an attended transfer's target; Local
channels (the hold's keeper, taps) are none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cti_server.events import CallHandling, DomainEvent
from cti_server.telephony import ami_events as ami

MAX_CALLS = 10000  # calls followed at once; the oldest forgotten (their end was never seen)


def party(channel: str) -> str:
    """The device behind a channel name; "" for Local channels and names without a device."""
    if not channel or channel.startswith("Local/"):
        return ""
    return ami.device_of(channel)


@dataclass
class _Call:
    answered: bool = False
    parties: list[str] = field(default_factory=list)  # in the order the customer met them
    holds: set[tuple[str, str]] = field(default_factory=set)  # (uniqueid, source) held now
    held_since: float | None = None
    hold_seconds: float = 0.0

    def meet(self, who: str) -> None:
        if who and (not self.parties or self.parties[-1] != who):
            self.parties.append(who)

    @property
    def returns(self) -> int:
        """Transfers that brought the customer back to a party they had left."""
        return sum(1 for i, who in enumerate(self.parties) if who in self.parties[:i])


class CallHandlingObserver:
    def __init__(
        self,
        node: str,
        publish: Callable[[DomainEvent], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node = node
        self._publish = publish
        self._clock = clock  # seconds, monotonic: AMI events carry no time of their own
        self._calls: dict[str, _Call] = {}
        self._channels: dict[str, str] = {}  # uniqueid → channel name, for transfer targets

    def apply(self, event: ami.AmiEvent) -> None:
        if isinstance(event, ami.ChannelCreated):
            self._remember(event.uniqueid, event.channel)
        elif isinstance(event, ami.BridgeEntered):
            self._bridged(event)
        elif isinstance(event, ami.CallTransferred) and event.target_uniqueid:
            call = self._calls.get(event.linkedid)
            if call is not None:
                call.meet(party(self._channels.get(event.target_uniqueid, "")))
        elif isinstance(event, ami.ChannelHeld):
            self._held(event)
        elif isinstance(event, ami.ChannelHungUp):
            self._channels.pop(event.uniqueid, None)
            if event.uniqueid == event.linkedid:
                self._ended(event.linkedid)

    def _remember(self, uniqueid: str, channel: str) -> None:
        if len(self._channels) >= MAX_CALLS * 4:
            del self._channels[next(iter(self._channels))]
        self._channels[uniqueid] = channel

    def _call(self, linkedid: str) -> _Call:
        call = self._calls.get(linkedid)
        if call is None:
            if len(self._calls) >= MAX_CALLS:
                del self._calls[next(iter(self._calls))]
            call = self._calls[linkedid] = _Call()
        return call

    def _bridged(self, event: ami.BridgeEntered) -> None:
        if event.uniqueid == event.linkedid:  # the customer: what matters is whom they meet
            return
        who = party(self._channels.get(event.uniqueid, ""))
        if who:
            call = self._call(event.linkedid)
            call.answered = True
            call.meet(who)

    def _held(self, event: ami.ChannelHeld) -> None:
        call = self._calls.get(event.linkedid)
        if call is None or not call.answered:
            return  # the queue's music before the answer is the wait, not a hold
        now = self._clock()
        key = (event.uniqueid, event.source)
        if event.held:
            call.holds.add(key)
            if call.held_since is None:
                call.held_since = now
        else:
            call.holds.discard(key)
            if not call.holds and call.held_since is not None:
                call.hold_seconds += now - call.held_since
                call.held_since = None

    def _ended(self, linkedid: str) -> None:
        call = self._calls.pop(linkedid, None)
        if call is None or not call.answered:
            return
        if call.held_since is not None:
            call.hold_seconds += self._clock() - call.held_since
        self._publish(
            CallHandling(
                node=self._node,
                linkedid=linkedid,
                hold_seconds=round(call.hold_seconds, 1),
                transfers=max(0, len(call.parties) - 1),
                returns=call.returns,
            )
        )
