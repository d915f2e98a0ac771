"""Typed AMI events: what the tracker needs of Asterisk's event stream, nothing else.

:func:`translate` turns one AMI message into at most one typed event. Events we do not use
(VarSet and Newexten are most of the traffic) are dropped here, before any other work; unknown and
old (Asterisk 11) events are ignored safely, as are events that lack the fields we need.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AmiEvent:
    node: str
    uniqueid: str
    linkedid: str


@dataclass(frozen=True, slots=True)
class ChannelCreated(AmiEvent):
    channel: str
    caller_number: str
    caller_name: str
    context: str
    exten: str
    state: str


@dataclass(frozen=True, slots=True)
class ChannelStateChanged(AmiEvent):
    channel: str
    state: str  # Down, Ring, Ringing, Up, Busy ...


@dataclass(frozen=True, slots=True)
class CallerIdChanged(AmiEvent):
    caller_number: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp(AmiEvent):
    channel: str
    cause: int
    cause_text: str


@dataclass(frozen=True, slots=True)
class DialStarted(AmiEvent):
    dest_uniqueid: str
    dest_channel: str


@dataclass(frozen=True, slots=True)
class DialEnded(AmiEvent):
    dest_uniqueid: str
    dest_channel: str
    status: str  # ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL


@dataclass(frozen=True, slots=True)
class BridgeEntered(AmiEvent):
    bridge: str


@dataclass(frozen=True, slots=True)
class BridgeLeft(AmiEvent):
    bridge: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoined(AmiEvent):
    queue: str
    position: int


@dataclass(frozen=True, slots=True)
class QueueCallerLeft(AmiEvent):
    queue: str


@dataclass(frozen=True, slots=True)
class QueueCallerAbandoned(AmiEvent):
    queue: str
    hold_seconds: int


@dataclass(frozen=True, slots=True)
class AgentCalled(AmiEvent):
    queue: str
    member: str
    interface: str
    dest_uniqueid: str


@dataclass(frozen=True, slots=True)
class AgentConnected(AmiEvent):
    queue: str
    member: str
    interface: str
    hold_seconds: int
    ring_seconds: int
    dest_uniqueid: str


@dataclass(frozen=True, slots=True)
class AgentNoAnswer(AmiEvent):
    queue: str
    member: str
    interface: str
    ring_ms: int


@dataclass(frozen=True, slots=True)
class AgentCompleted(AmiEvent):
    queue: str
    member: str
    interface: str
    talk_seconds: int
    reason: str  # caller, agent, transfer


@dataclass(frozen=True, slots=True)
class QueueMemberChanged(AmiEvent):
    """QueueMemberAdded/Removed/Pause/Status: one member's presence and state in one queue."""

    queue: str
    member: str
    interface: str
    change: str  # added, removed, status, paused
    paused: bool
    pause_reason: str
    in_call: bool
    device_status: int  # AST_DEVICE_*: 1 not in use, 2 in use, 6 ringing, 5 unavailable ...
    wrapup_seconds: int = 0  # the member's own wrap-up time (Asterisk 16+), 0: the queue's


@dataclass(frozen=True, slots=True)
class CallTransferred(AmiEvent):
    """A transfer that succeeded; ``uniqueid`` is the transferer's channel in the original call.

    Attended (``kind`` "attended"): the consultation call (``second_uniqueid``, in
    ``second_bridge``) ends in it and its target (``target_uniqueid``; absent in some Asterisk
    13 builds, when the target is the other channel of ``second_bridge``) takes the transferer's
    place; ``dest_type`` says how (Bridge: merged, Link: joined by a Local pair, App: the
    target still runs an application, a blonde transfer while it rings, Threeway: the
    transferer stays). Blind (``kind`` "blind"): ``transferee_uniqueid`` goes to
    ``extension``; its next answered dial (or queue agent) is the target.
    """

    second_uniqueid: str
    target_uniqueid: str
    kind: str = "attended"
    dest_type: str = ""
    orig_bridge: str = ""
    second_bridge: str = ""
    transferer_channel: str = ""
    transferee_uniqueid: str = ""
    extension: str = ""


def _attended_transfer(m: Mapping[str, Any], node: str) -> AmiEvent | None:
    if _s(m, "Result") != "Success":
        return None
    return CallTransferred(
        node=node,
        uniqueid=_s(m, "OrigTransfererUniqueid"),
        linkedid=_s(m, "OrigTransfererLinkedid") or _s(m, "OrigTransfererUniqueid"),
        second_uniqueid=_s(m, "SecondTransfererUniqueid"),
        target_uniqueid=_s(m, "TransferTargetUniqueid"),
        kind="attended",
        dest_type=_s(m, "DestType"),
        orig_bridge=_s(m, "OrigBridgeUniqueid"),
        second_bridge=_s(m, "SecondBridgeUniqueid"),
        transferer_channel=_s(m, "OrigTransfererChannel"),
        transferee_uniqueid=_s(m, "TransfereeUniqueid"),
    )


def _blind_transfer(m: Mapping[str, Any], node: str) -> AmiEvent | None:
    if _s(m, "Result") != "Success":
        return None
    return CallTransferred(
        node=node,
        uniqueid=_s(m, "TransfererUniqueid"),
        linkedid=_s(m, "TransfererLinkedid") or _s(m, "TransfererUniqueid"),
        second_uniqueid="",
        target_uniqueid="",
        kind="blind",
        orig_bridge=_s(m, "BridgeUniqueid"),
        transferer_channel=_s(m, "TransfererChannel"),
        transferee_uniqueid=_s(m, "TransfereeUniqueid"),
        extension=_s(m, "Extension"),
    )


@dataclass(frozen=True, slots=True)
class CallFoundAnswered(AmiEvent):
    """Not an Asterisk message: a resync found the caller (``uniqueid``) bridged with
    ``party_uniqueid`` ("" when no channel of the call is with it), in ``queue`` ("" if none),
    though no answer was seen while the link was down."""

    party_uniqueid: str
    party_channel: str
    queue: str


@dataclass(frozen=True, slots=True)
class CallPickedUp(AmiEvent):
    """A phone (``uniqueid``, ``channel``: the picker, in a call of its own) took over a ringing
    channel (``target_uniqueid``) of another call: the picker answers that call in its place."""

    channel: str
    target_uniqueid: str
    target_linkedid: str
    target_channel: str


def _picked_up(m: Mapping[str, Any], node: str) -> AmiEvent:
    return CallPickedUp(
        **_ids(m, node),
        channel=_s(m, "Channel"),
        target_uniqueid=_s(m, "TargetUniqueid"),
        target_linkedid=_s(m, "TargetLinkedid") or _s(m, "TargetUniqueid"),
        target_channel=_s(m, "TargetChannel"),
    )


@dataclass(frozen=True, slots=True)
class ChannelRenamed(AmiEvent):
    """A channel took another name (a masquerade: a pickup, a transfer): the device behind the
    leg may have changed."""

    channel: str


@dataclass(frozen=True, slots=True)
class DialForwarded(AmiEvent):
    """The phone dialled (``dest_uniqueid``) forwarded the call (a 302, call forwarding) to
    ``forward``; the dial goes on to that target."""

    dest_uniqueid: str
    dest_channel: str
    forward: str


def _dial_state(m: Mapping[str, Any], node: str) -> AmiEvent | None:
    forward = _s(m, "Forward")
    if not forward:
        return None
    return DialForwarded(
        **_ids(m, node),
        dest_uniqueid=_s(m, "DestUniqueid"),
        dest_channel=_s(m, "DestChannel"),
        forward=forward,
    )


def _dial_end(m: Mapping[str, Any], node: str) -> AmiEvent:
    if _s(m, "Forward"):
        forwarded = _dial_state(m, node)
        assert forwarded is not None
        return forwarded
    return DialEnded(
        **_ids(m, node),
        dest_uniqueid=_s(m, "DestUniqueid"),
        dest_channel=_s(m, "DestChannel"),
        status=_s(m, "DialStatus"),
    )


@dataclass(frozen=True, slots=True)
class BridgesMerged(AmiEvent):
    """Every channel of ``from_bridge`` moved into ``to_bridge`` (an attended transfer's merge)."""

    to_bridge: str
    from_bridge: str


@dataclass(frozen=True, slots=True)
class CallParked(AmiEvent):
    """The customer's channel (``uniqueid``) parked by ``parker_channel`` (``retrieved``:
    False), or taken out of the parking lot by ``retriever_uniqueid`` (``retrieved``: True)."""

    retrieved: bool
    parker_channel: str
    retriever_uniqueid: str


def _parked(retrieved: bool) -> Translator:
    def _translate(m: Mapping[str, Any], node: str) -> AmiEvent:
        uniqueid = _s(m, "ParkeeUniqueid")
        return CallParked(
            node=node,
            uniqueid=uniqueid,
            linkedid=_s(m, "ParkeeLinkedid") or uniqueid,
            retrieved=retrieved,
            parker_channel=_s(m, "ParkerChannel") or _s(m, "ParkerDialString"),
            retriever_uniqueid=_s(m, "RetrieverUniqueid"),
        )

    return _translate


@dataclass(frozen=True, slots=True)
class ChannelHeld(AmiEvent):
    """A channel put on hold or taken off it: ``source`` "hold" (Hold/Unhold, a phone's own
    hold) or "music" (MusicOnHoldStart/Stop: the CTI's hold, a queue's or a transfer's music)."""

    channel: str
    held: bool
    source: str


def _held(held: bool, source: str) -> Translator:
    def _translate(m: Mapping[str, Any], node: str) -> AmiEvent:
        return ChannelHeld(**_ids(m, node), channel=_s(m, "Channel"), held=held, source=source)

    return _translate


@dataclass(frozen=True, slots=True)
class UserEventReceived(AmiEvent):
    """A dialplan ``UserEvent(name,key: value...)``: for features that want one; ignored else."""

    name: str
    fields: tuple[tuple[str, str], ...]  # its own headers, in order, without AMI's standard ones


@dataclass(frozen=True, slots=True)
class AgiCommandStarted(AmiEvent):
    channel: str
    command: str
    command_id: str


@dataclass(frozen=True, slots=True)
class AgiCommandEnded(AmiEvent):
    channel: str
    command: str
    command_id: str
    result_code: int  # 200 success, 510 invalid command, 511 dead channel ...
    result: str


# headers every channel event carries: what is left of a UserEvent is its own
_CHANNEL_HEADERS = frozenset(
    {
        "Event",
        "UserEvent",
        "Privilege",
        "Channel",
        "ChannelState",
        "ChannelStateDesc",
        "CallerIDNum",
        "CallerIDName",
        "ConnectedLineNum",
        "ConnectedLineName",
        "Language",
        "AccountCode",
        "Context",
        "Exten",
        "Priority",
        "Uniqueid",
        "Linkedid",
        "content",
    }
)


def _user_event(m: Mapping[str, Any], node: str) -> AmiEvent:
    fields = tuple((str(key), _s(m, str(key))) for key in m if str(key) not in _CHANNEL_HEADERS)
    return UserEventReceived(**_ids(m, node), name=_s(m, "UserEvent"), fields=fields)


def _agi_started(m: Mapping[str, Any], node: str) -> AmiEvent:
    return AgiCommandStarted(
        **_ids(m, node),
        channel=_s(m, "Channel"),
        command=_s(m, "Command"),
        command_id=_s(m, "CommandId"),
    )


def _agi_ended(m: Mapping[str, Any], node: str) -> AmiEvent:
    return AgiCommandEnded(
        **_ids(m, node),
        channel=_s(m, "Channel"),
        command=_s(m, "Command"),
        command_id=_s(m, "CommandId"),
        result_code=_i(m, "ResultCode"),
        result=_s(m, "Result"),
    )


Translator = Callable[[Mapping[str, Any], str], AmiEvent | None]


def device_of(channel: str) -> str:
    """The device behind a channel name: ``SIP/150010002-0000001a`` -> ``SIP/150010002``."""
    base, _, _ = channel.rpartition("-")
    return base or channel


def _s(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key, "")
    if type(value) is str:  # nearly every header: no more to do (at 1,000 rings at once)
        return value
    if isinstance(value, list):  # a UserEvent header repeated: keep the first
        value = value[0] if value else ""
    return str(value)


def _i(message: Mapping[str, Any], key: str) -> int:
    try:
        return int(_s(message, key) or 0)
    except ValueError:
        return 0


def _ids(message: Mapping[str, Any], node: str) -> dict[str, str]:
    uniqueid = _s(message, "Uniqueid")
    return {"node": node, "uniqueid": uniqueid, "linkedid": _s(message, "Linkedid") or uniqueid}


def _ids_or_agents(message: Mapping[str, Any], node: str) -> dict[str, str]:
    """AgentComplete after the caller's channel is gone carries only the agent's ids; it must
    still free the agent."""
    if _s(message, "Uniqueid"):
        return _ids(message, node)
    uniqueid = _s(message, "DestUniqueid")
    return {"node": node, "uniqueid": uniqueid, "linkedid": _s(message, "DestLinkedid") or uniqueid}


_C_ESCAPE = re.compile(r"\\(.)")
_C_CHARS = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def unescape_c(value: str) -> str:
    """Asterisk escapes caller-ID text in AMI events C-style (``O\\'Brien``): undo it."""
    if "\\" not in value:
        return value
    return _C_ESCAPE.sub(lambda m: _C_CHARS.get(m.group(1), m.group(1)), value)


def _name(message: Mapping[str, Any], key: str) -> str:
    value = _s(message, key)
    return "" if value in ("<unknown>", "<Unknown>") else unescape_c(value)


def _member(message: Mapping[str, Any]) -> dict[str, str]:
    interface = _s(message, "Interface") or _s(message, "Location")
    return {
        "queue": _s(message, "Queue"),
        "member": _s(message, "MemberName") or interface,
        "interface": interface,
    }


def _agent_called(m: Mapping[str, Any], node: str) -> AmiEvent:
    """A queue rings a member: the screen pop's event, so made without the dicts of
    :func:`_ids` and :func:`_member` (the same fields)."""
    uniqueid = _s(m, "Uniqueid")
    interface = _s(m, "Interface") or _s(m, "Location")
    return AgentCalled(
        node=node,
        uniqueid=uniqueid,
        linkedid=_s(m, "Linkedid") or uniqueid,
        queue=_s(m, "Queue"),
        member=_s(m, "MemberName") or interface,
        interface=interface,
        dest_uniqueid=_s(m, "DestUniqueid"),
    )


def _channel_created(m: Mapping[str, Any], node: str) -> AmiEvent:
    return ChannelCreated(
        **_ids(m, node),
        channel=_s(m, "Channel"),
        caller_number=_name(m, "CallerIDNum"),
        caller_name=_name(m, "CallerIDName"),
        context=_s(m, "Context"),
        exten=_s(m, "Exten"),
        state=_s(m, "ChannelStateDesc"),
    )


def _member_changed(change: str) -> Translator:
    def _translate(m: Mapping[str, Any], node: str) -> AmiEvent:
        return QueueMemberChanged(
            **_ids(m, node),
            **_member(m),
            change=change,
            paused=_s(m, "Paused") == "1",
            pause_reason=_s(m, "PausedReason"),
            in_call=_s(m, "InCall") == "1",
            device_status=_i(m, "Status"),
            wrapup_seconds=_i(m, "Wrapuptime"),
        )

    return _translate


TRANSLATORS: dict[str, Translator] = {
    "Newchannel": _channel_created,
    "Newstate": lambda m, n: ChannelStateChanged(
        **_ids(m, n), channel=_s(m, "Channel"), state=_s(m, "ChannelStateDesc")
    ),
    "NewCallerid": lambda m, n: CallerIdChanged(
        **_ids(m, n), caller_number=_name(m, "CallerIDNum"), caller_name=_name(m, "CallerIDName")
    ),
    "Hangup": lambda m, n: ChannelHungUp(
        **_ids(m, n), channel=_s(m, "Channel"), cause=_i(m, "Cause"), cause_text=_s(m, "Cause-txt")
    ),
    "DialBegin": lambda m, n: DialStarted(
        **_ids(m, n), dest_uniqueid=_s(m, "DestUniqueid"), dest_channel=_s(m, "DestChannel")
    ),
    "DialEnd": _dial_end,
    "DialState": _dial_state,
    "Pickup": _picked_up,
    "Rename": lambda m, n: ChannelRenamed(**_ids(m, n), channel=_s(m, "Newname")),
    "BridgeMerge": lambda m, n: BridgesMerged(
        node=n,
        uniqueid="",
        linkedid="",
        to_bridge=_s(m, "ToBridgeUniqueid"),
        from_bridge=_s(m, "FromBridgeUniqueid"),
    ),
    "ParkedCall": _parked(False),
    "UnParkedCall": _parked(True),
    "BridgeEnter": lambda m, n: BridgeEntered(**_ids(m, n), bridge=_s(m, "BridgeUniqueid")),
    "BridgeLeave": lambda m, n: BridgeLeft(**_ids(m, n), bridge=_s(m, "BridgeUniqueid")),
    "QueueCallerJoin": lambda m, n: QueueCallerJoined(
        **_ids(m, n), queue=_s(m, "Queue"), position=_i(m, "Position")
    ),
    "QueueCallerLeave": lambda m, n: QueueCallerLeft(**_ids(m, n), queue=_s(m, "Queue")),
    "QueueCallerAbandon": lambda m, n: QueueCallerAbandoned(
        **_ids(m, n), queue=_s(m, "Queue"), hold_seconds=_i(m, "HoldTime")
    ),
    "AgentCalled": _agent_called,
    "AgentConnect": lambda m, n: AgentConnected(
        **_ids(m, n),
        **_member(m),
        hold_seconds=_i(m, "HoldTime"),
        ring_seconds=_i(m, "RingTime"),
        dest_uniqueid=_s(m, "DestUniqueid"),
    ),
    "AgentRingNoAnswer": lambda m, n: AgentNoAnswer(
        **_ids(m, n), **_member(m), ring_ms=_i(m, "RingTime")
    ),
    "AgentComplete": lambda m, n: AgentCompleted(
        **_ids_or_agents(m, n), **_member(m), talk_seconds=_i(m, "TalkTime"), reason=_s(m, "Reason")
    ),
    "QueueMemberAdded": _member_changed("added"),
    "QueueMemberRemoved": _member_changed("removed"),
    "QueueMemberStatus": _member_changed("status"),
    "QueueMemberPause": _member_changed("paused"),
    "AttendedTransfer": _attended_transfer,
    "BlindTransfer": _blind_transfer,
    "UserEvent": _user_event,
    "AGIExecStart": _agi_started,
    "AGIExecEnd": _agi_ended,
    "Hold": _held(True, "hold"),
    "Unhold": _held(False, "hold"),
    "MusicOnHoldStart": _held(True, "music"),
    "MusicOnHoldStop": _held(False, "music"),
}

# AMI events the server never looks at: dropped before anything else runs.
IGNORED = frozenset({"VarSet", "Newexten", "RTCPSent", "RTCPReceived", "NewAccountCode"})


def translate(message: Mapping[str, Any], node: str) -> AmiEvent | None:
    """The typed event for one AMI message, or None for what we do not track."""
    name = _s(message, "Event")
    if name in IGNORED:
        return None
    translator = TRANSLATORS.get(name)
    if translator is None:
        return None
    event = translator(message, node)
    if event is None:
        return None
    if isinstance(event, QueueMemberChanged):
        return event if event.queue and event.interface else None
    if isinstance(event, BridgesMerged):  # about bridges, not a channel
        return event if event.to_bridge and event.from_bridge else None
    return event if event.uniqueid else None
