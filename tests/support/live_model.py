"""Calls in the tracker's live model, built as Asterisk would report them: typed AMI events through
:meth:`Tracker.apply`, never by writing the tracker's dictionaries (it alone owns them).

Each builder returns the tracker's own :class:`Call`; what the events imply is published on the
tracker's bus as in production (``CallStarted``, ``CallQueued``, ``CallAnswered``...).
"""

from __future__ import annotations

from cti_server.telephony import ami_events as ami
from cti_server.tracker.model import Call
from cti_server.tracker.tracker import Tracker


def _ids(node: str, uniqueid: str, linkedid: str) -> dict[str, str]:
    return {"node": node, "uniqueid": uniqueid, "linkedid": linkedid}


def _the_call(tracker: Tracker, node: str, linkedid: str) -> Call:
    call = tracker.call(node, linkedid)
    assert call is not None, f"the tracker has no live call {linkedid} on {node}"
    return call


def leg(tracker: Tracker, node: str, linkedid: str, uniqueid: str, channel: str) -> None:
    """A channel of the call created (the first one is the caller's)."""
    tracker.apply(
        ami.ChannelCreated(
            **_ids(node, uniqueid, linkedid),
            channel=channel,
            caller_number="",
            caller_name="",
            context="",
            exten="",
            state="Up",
        )
    )


def arrived_call(
    tracker: Tracker,
    node: str,
    linkedid: str,
    *,
    number: str = "13900000000",
    name: str = "",
    dialed: str = "100",
    channel: str = "PJSIP/trunk-00000001",
) -> Call:
    """A caller's channel created (its uniqueid is the linkedid): a call in the dialplan."""
    tracker.apply(
        ami.ChannelCreated(
            **_ids(node, linkedid, linkedid),
            channel=channel,
            caller_number=number,
            caller_name=name,
            context="from-trunk",
            exten=dialed,
            state="Up",
        )
    )
    return _the_call(tracker, node, linkedid)


def waiting_call(
    tracker: Tracker,
    node: str,
    linkedid: str,
    queue: str,
    *,
    number: str = "13900000000",
    name: str = "",
    channel: str = "PJSIP/trunk-00000001",
) -> Call:
    """A caller waiting in ``queue``: arrived, then joined it."""
    call = arrived_call(tracker, node, linkedid, number=number, name=name, channel=channel)
    tracker.apply(ami.QueueCallerJoined(**_ids(node, linkedid, linkedid), queue=queue, position=1))
    return call


def member(tracker: Tracker, node: str, queue: str, agent: str, interface: str) -> None:
    """``agent`` (a queue member name) on ``interface`` added to ``queue``, available."""
    tracker.apply(
        ami.QueueMemberChanged(
            node=node,
            uniqueid="",
            linkedid="",
            queue=queue,
            member=agent,
            interface=interface,
            change="added",
            paused=False,
            pause_reason="",
            in_call=False,
            device_status=1,
        )
    )


def agent_answers(
    tracker: Tracker,
    node: str,
    linkedid: str,
    queue: str,
    agent: str,
    interface: str,
    agent_channel: str,
) -> Call:
    """The waiting caller of ``queue`` rings ``agent`` (a member of it), who answers."""
    call = _the_call(tracker, node, linkedid)
    agent_leg = f"{linkedid}-agent"
    member(tracker, node, queue, agent, interface)
    leg(tracker, node, linkedid, agent_leg, agent_channel)
    who = {"queue": queue, "member": agent, "interface": interface}
    caller = _ids(node, call.caller_uniqueid, linkedid)
    tracker.apply(ami.AgentCalled(**caller, **who, dest_uniqueid=agent_leg))
    tracker.apply(
        ami.DialEnded(
            **caller, dest_uniqueid=agent_leg, dest_channel=agent_channel, status="ANSWER"
        )
    )
    tracker.apply(
        ami.AgentConnected(**caller, **who, hold_seconds=0, ring_seconds=1, dest_uniqueid=agent_leg)
    )
    return call


def answered_call(
    tracker: Tracker,
    node: str,
    linkedid: str,
    queue: str,
    agent: str,
    *,
    interface: str = "",
    agent_channel: str = "",
    number: str = "13900000000",
    name: str = "",
    channel: str = "PJSIP/trunk-00000001",
) -> Call:
    """A caller of ``queue`` answered by ``agent`` (a queue member name) on ``interface``
    (``PJSIP/<extension>`` if not given, the extension being the digits ending the name)."""
    extension = agent.rsplit("-", 1)[-1]
    interface = interface or f"PJSIP/{extension}"
    waiting_call(tracker, node, linkedid, queue, number=number, name=name, channel=channel)
    return agent_answers(
        tracker,
        node,
        linkedid,
        queue,
        agent,
        interface,
        agent_channel or f"{interface}-00000002",
    )


def dialled_call(
    tracker: Tracker,
    node: str,
    linkedid: str,
    caller_channel: str,
    answerer_channel: str,
    *,
    number: str = "13900000000",
    name: str = "",
) -> Call:
    """A call the caller's dial answered straight (no queue): the caller's leg and the phone
    that answered (its uniqueid is the linkedid with ``-1`` added)."""
    call = arrived_call(tracker, node, linkedid, number=number, name=name, channel=caller_channel)
    answerer = f"{linkedid}-1"
    leg(tracker, node, linkedid, answerer, answerer_channel)
    caller = _ids(node, linkedid, linkedid)
    tracker.apply(ami.DialStarted(**caller, dest_uniqueid=answerer, dest_channel=answerer_channel))
    tracker.apply(
        ami.DialEnded(
            **caller, dest_uniqueid=answerer, dest_channel=answerer_channel, status="ANSWER"
        )
    )
    return call


def hang_up(tracker: Tracker, node: str, linkedid: str) -> None:
    """Every live channel of the call hangs up, the caller's first: the call ends."""
    call = _the_call(tracker, node, linkedid)
    legs = sorted(call.live_legs(), key=lambda leg: leg.uniqueid != call.caller_uniqueid)
    for live in legs:
        tracker.apply(
            ami.ChannelHungUp(
                **_ids(node, live.uniqueid, linkedid),
                channel=live.channel,
                cause=16,
                cause_text="Normal Clearing",
            )
        )


def agent_completes(
    tracker: Tracker, node: str, linkedid: str, *, talk_seconds: int, reason: str = "caller"
) -> None:
    """app_queue's word that the answering agent's call is over after ``talk_seconds``, then
    the hang-ups: the call ends."""
    call = _the_call(tracker, node, linkedid)
    agent = next(a for a in tracker.all_agents(node) if a.name == call.agent)
    tracker.apply(
        ami.AgentCompleted(
            **_ids(node, call.caller_uniqueid, linkedid),
            queue=call.queue,
            member=agent.name,
            interface=agent.interface,
            talk_seconds=talk_seconds,
            reason=reason,
        )
    )
    hang_up(tracker, node, linkedid)
