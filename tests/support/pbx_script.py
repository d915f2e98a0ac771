"""A call written as the AMI messages Asterisk sends, fed to a real tracker at set times.

For unit tests of the live model where no recording shows the case: each helper sends what
Asterisk 13-22 sends for one step (a channel, a dial, a bridge, a transfer), nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cti_server.events import DomainEvent
from cti_server.telephony.ami_events import translate
from cti_server.tracker.tracker import Tracker

NODE = "pbx1"
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class Pbx:
    """One Asterisk's event stream into a tracker; ``at`` is seconds since the start."""

    def __init__(self) -> None:
        self.now = START
        self.published: list[DomainEvent] = []
        self.tracker = Tracker(self.published.append, clock=lambda: self.now)
        self._n = 0
        self._channels: dict[str, str] = {}
        self._linkedids: dict[str, str] = {}

    def send(self, at: float, name: str, uniqueid: str, **fields: Any) -> None:
        self.now = START + timedelta(seconds=at)
        linkedid = self._linkedids.get(uniqueid, uniqueid)
        message = {"Event": name, "Uniqueid": uniqueid, "Linkedid": linkedid, **fields}
        if uniqueid in self._channels and "Channel" not in fields:
            message["Channel"] = self._channels[uniqueid]
        event = translate(message, NODE)
        assert event is not None, name
        self.tracker.apply(event)

    def channel(self, at: float, device: str, linkedid: str = "", exten: str = "s") -> str:
        """A new channel on ``device`` (``PJSIP/1001``; ``Local/x@ctx;1``) in the call
        ``linkedid`` (a call of its own if empty); its uniqueid."""
        self._n += 1
        uniqueid = f"1700000000.{self._n}"
        self._linkedids[uniqueid] = linkedid or uniqueid
        if device.startswith("Local/"):  # both halves of a pair: one name, ;1 and ;2
            base, _, half = device.rpartition(";")
            name = f"{base}-{sum(map(ord, base)):08x};{half}"
        else:
            name = f"{device}-{self._n:08x}"
        self._channels[uniqueid] = name
        self.send(
            at,
            "Newchannel",
            uniqueid,
            ChannelStateDesc="Ring",
            Exten=exten,
            CallerIDNum="+8613800138000" if not linkedid else "",
        )
        return uniqueid

    def name(self, uniqueid: str) -> str:
        return self._channels[uniqueid]

    def up(self, at: float, uniqueid: str) -> None:
        self.send(at, "Newstate", uniqueid, ChannelStateDesc="Up")

    def dial(self, at: float, caller: str, callee: str, status: str = "ANSWER") -> None:
        target = {"DestUniqueid": callee, "DestChannel": self._channels[callee]}
        self.send(at, "DialBegin", caller, **target)
        if status == "ANSWER":
            self.up(at, callee)
        self.send(at, "DialEnd", caller, DialStatus=status, **target)

    def bridge(self, at: float, bridge: str, *legs: str) -> None:
        for leg in legs:
            self.send(at, "BridgeEnter", leg, BridgeUniqueid=bridge)

    def leave(self, at: float, bridge: str, *legs: str) -> None:
        for leg in legs:
            self.send(at, "BridgeLeave", leg, BridgeUniqueid=bridge)

    def hangup(self, at: float, *legs: str) -> None:
        for leg in legs:
            self.send(at, "Hangup", leg, Cause="16")

    def blind_transfer(self, at: float, transferer: str, transferee: str, exten: str) -> None:
        self.send(
            at,
            "BlindTransfer",
            transferer,
            Result="Success",
            TransfererUniqueid=transferer,
            TransfererLinkedid=self._linkedids[transferer],
            TransfererChannel=self._channels[transferer],
            TransfereeUniqueid=transferee,
            TransfereeChannel=self._channels[transferee],
            Extension=exten,
            Context="cti-agents",
        )

    def attended_transfer(
        self,
        at: float,
        transferer: str,
        second: str,
        target: str,
        second_bridge: str,
        *,
        dest_type: str = "Bridge",
        with_target: bool = True,
    ) -> None:
        fields = {
            "Result": "Success",
            "DestType": dest_type,
            "OrigTransfererUniqueid": transferer,
            "OrigTransfererLinkedid": self._linkedids[transferer],
            "OrigTransfererChannel": self._channels[transferer],
            "SecondTransfererUniqueid": second,
            "SecondTransfererLinkedid": self._linkedids[second],
            "SecondBridgeUniqueid": second_bridge,
        }
        if with_target:
            fields |= {"TransferTargetUniqueid": target, "TransferTargetChannel": self.name(target)}
        self.send(at, "AttendedTransfer", transferer, **fields)
