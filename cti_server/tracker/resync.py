"""Resync: rebuild the live model of one node from what Asterisk says is true right now.

Run on every (re)connect. Calls Asterisk no longer has are ended (their CallEnded is published,
so the CRM gets their end); calls we did not know are created from their channels; queue callers
and members come from QueueStatus, and agents in no queue any more are logged out. Afterwards
the model matches Asterisk, whatever was missed.

Queue figures (offered, answered, abandoned, talk and wait times) are the server's own and are
never taken from Asterisk, not even on a fresh server: app_queue's counters (QueueParams
``Completed``/``Abandoned``/``Holdtime``/``TalkTime``) run since Asterisk started or its queues
were last reset, not since the contact centre's day began, and they count ``Queue()`` segments,
not callers: with routing on, every heartbeat check, withdraw and ring-out is an "abandon" to
app_queue. A caller waiting at the resync still counts (offered, waiting) from its queue entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from panoramisk.message import Message

from cti_server.events import AgentState
from cti_server.telephony import ami_events as ami
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.model import Call
from cti_server.tracker.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveChannel:
    uniqueid: str
    linkedid: str
    channel: str
    state: str
    caller_number: str
    caller_name: str
    exten: str
    application: str
    application_data: str
    bridge: str
    seconds: int


@dataclass(frozen=True)
class QueueEntry:
    queue: str
    uniqueid: str
    wait_seconds: int
    position: int


def _get(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key, "")
    return str(value[0] if isinstance(value, list) and value else value or "")


def _seconds(text: str) -> int:
    """``Duration`` comes as ``HH:MM:SS`` (CoreShowChannel) or seconds."""
    try:
        if ":" in text:
            hours, minutes, seconds = (int(part) for part in text.split(":"))
            return hours * 3600 + minutes * 60 + seconds
        return int(text or 0)
    except ValueError:
        return 0


def _unknown(text: str) -> str:
    return "" if text in ("<unknown>", "<Unknown>") else ami.unescape_c(text)


def parse_channels(messages: Sequence[Mapping[str, Any]]) -> list[LiveChannel]:
    return [
        LiveChannel(
            uniqueid=_get(m, "Uniqueid"),
            linkedid=_get(m, "Linkedid") or _get(m, "Uniqueid"),
            channel=_get(m, "Channel"),
            state=_get(m, "ChannelStateDesc"),
            caller_number=_unknown(_get(m, "CallerIDNum")),
            caller_name=_unknown(_get(m, "CallerIDName")),
            exten=_get(m, "Exten"),
            application=_get(m, "Application"),
            application_data=_get(m, "ApplicationData"),
            bridge=_get(m, "BridgeId"),
            seconds=_seconds(_get(m, "Duration")),
        )
        for m in messages
        if _get(m, "Event") == "CoreShowChannel" and _get(m, "Uniqueid")
    ]


def parse_queue_status(
    messages: Sequence[Mapping[str, Any]], node: str
) -> tuple[list[QueueEntry], list[ami.QueueMemberChanged]]:
    entries, members = [], []
    for m in messages:
        kind = _get(m, "Event")
        if kind == "QueueEntry":
            entries.append(
                QueueEntry(
                    _get(m, "Queue"),
                    _get(m, "Uniqueid"),
                    _seconds(_get(m, "Wait")),
                    _seconds(_get(m, "Position")),
                )
            )
        elif kind == "QueueMember":
            interface = _get(m, "StateInterface") or _get(m, "Location")
            members.append(
                ami.QueueMemberChanged(
                    node=node,
                    uniqueid="",
                    linkedid="",
                    queue=_get(m, "Queue"),
                    member=_get(m, "Name") or interface,
                    interface=_get(m, "Location") or interface,
                    change="status",
                    paused=_get(m, "Paused") == "1",
                    pause_reason=_get(m, "PausedReason"),
                    in_call=_get(m, "InCall") == "1",
                    device_status=_seconds(_get(m, "Status")),
                    wrapup_seconds=_seconds(_get(m, "Wrapuptime")),
                )
            )
    return entries, members


def reconcile(
    tracker: Tracker,
    node: str,
    channels: list[LiveChannel],
    entries: list[QueueEntry],
    members: list[ami.QueueMemberChanged],
    *,
    asked_at: datetime | None = None,
    all_members: bool = False,
) -> None:
    """Make the tracker's view of ``node`` equal to Asterisk's as it was at ``asked_at``.

    Everything goes in as the events that were missed, through :meth:`Tracker.apply`, each
    ``at`` the time it happened as far as the durations Asterisk reports tell: the tracker's own
    handlers update the model and publish what it implies (a call that ended unseen ends through
    the hang-ups of its channels, and its ``CallEnded`` is the tracker's).

    Events keep arriving while the snapshot is taken: a call that ended since is not brought
    back, and a call or leg that appeared since is not ended for missing from the snapshot.
    ``all_members``: ``members`` lists every member of every queue (a whole QueueStatus), so a
    tracked agent missing from it is in no queue any more.
    """
    asked_at = asked_at or tracker.clock()
    by_call: dict[str, list[LiveChannel]] = {}
    for channel in channels:
        by_call.setdefault(channel.linkedid, []).append(channel)
    _end_vanished(tracker, node, by_call, asked_at)
    queued = {e.uniqueid: e for e in entries}
    for linkedid, legs in by_call.items():
        if tracker.ended_call(node, linkedid) is not None:
            continue  # it hung up after the snapshot was taken
        # the caller's leg is the one whose uniqueid became the linkedid, else the oldest
        legs.sort(key=lambda c: (c.uniqueid != linkedid, -c.seconds))
        call = _with_legs(tracker, node, linkedid, legs)
        if call is not None:
            _take_live_state(tracker, call, legs, queued.get(call.caller_uniqueid))
    for member in members:
        tracker.apply(member)
    if all_members:
        _log_out_missing(tracker, node, members)
    tracker.resynced(node, list(by_call), asked_at)
    log.info(
        "resync of %s: %d calls, %d queue callers, %d members",
        node,
        len(by_call),
        len(entries),
        len(members),
    )


def _log_out_missing(tracker: Tracker, node: str, members: list[ami.QueueMemberChanged]) -> None:
    """Agents removed from their queues while we were not listening: each removal Asterisk
    would have reported (the last one logs the agent out)."""
    queues_of: dict[str, set[str]] = {}
    for member in members:
        queues_of.setdefault(member.interface, set()).add(member.queue)
    for agent in tracker.all_agents(node):
        gone = sorted(agent.queues - queues_of.get(agent.interface, set()))
        if len(gone) == len(agent.queues) and agent.state != AgentState.LOGGED_OUT:
            log.info("resync of %s: %s is in no queue any more: logged out", node, agent.name)
            gone = gone or [""]  # in none already, yet not logged out
        for queue in gone:
            tracker.apply(
                ami.QueueMemberChanged(
                    node=node,
                    uniqueid="",
                    linkedid="",
                    queue=queue,
                    member=agent.name,
                    interface=agent.interface,
                    change="removed",
                    paused=False,
                    pause_reason="",
                    in_call=False,
                    device_status=0,
                )
            )


def _end_vanished(
    tracker: Tracker, node: str, by_call: dict[str, list[LiveChannel]], asked_at: datetime
) -> None:
    """Legs that Asterisk no longer has hung up while we were not listening: their hang-ups,
    the last of a call's ending it."""
    live = {c.uniqueid for legs in by_call.values() for c in legs}
    for call in tracker.live_calls(node):
        if call.arrived_at > asked_at:
            continue
        for leg in list(call.legs.values()):
            if leg.hung_up_at is None and leg.uniqueid not in live and leg.created_at <= asked_at:
                tracker.apply(
                    ami.ChannelHungUp(
                        node=node,
                        uniqueid=leg.uniqueid,
                        linkedid=call.linkedid,
                        channel=leg.channel,
                        cause=0,
                        cause_text="gone after resync",
                    )
                )


def _with_legs(tracker: Tracker, node: str, linkedid: str, legs: list[LiveChannel]) -> Call | None:
    """The call, with the channels created while we were not listening: a call unknown so far
    starts with its caller's (the first of ``legs``), as long ago as Asterisk says."""
    now = tracker.clock()
    call = tracker.call(node, linkedid)
    for live in legs:
        if call is not None and live.uniqueid in call.legs:
            continue
        tracker.apply(
            ami.ChannelCreated(
                node=node,
                uniqueid=live.uniqueid,
                linkedid=linkedid,
                channel=live.channel,
                caller_number=live.caller_number,
                caller_name=live.caller_name,
                context="",
                exten=live.exten,
                state=live.state,
            ),
            at=now - timedelta(seconds=live.seconds),
        )
        call = call or tracker.call(node, linkedid)
    return call


def _take_live_state(
    tracker: Tracker, call: Call, legs: list[LiveChannel], entry: QueueEntry | None
) -> None:
    now = tracker.clock()
    caller = next((c for c in legs if c.uniqueid == call.caller_uniqueid), None)
    in_queue = ""
    if caller is not None and caller.application == "Queue":
        in_queue = caller.application_data.split(",", 1)[0]
    if entry is not None:
        if not _waits_in(tracker, call, entry.queue):
            # both times are whole seconds ago: never let the rounding put the join before arrival
            joined = max(now - timedelta(seconds=entry.wait_seconds), call.arrived_at)
            tracker.apply(
                ami.QueueCallerJoined(
                    node=call.node,
                    uniqueid=entry.uniqueid,
                    linkedid=call.linkedid,
                    queue=entry.queue,
                    position=entry.position,
                ),
                at=joined,
            )
    elif len(legs) > 1 and caller is not None and caller.bridge:
        party = next((c for c in legs if c.bridge == caller.bridge and c is not caller), None)
        _answered_unseen(tracker, call, party, in_queue, _answered_at(call, legs, now))


def _waits_in(tracker: Tracker, call: Call, queue: str) -> bool:
    """The model has the caller in ``queue`` now, waiting for it and for no queue beyond it:
    the queue entry tells it nothing new."""
    stats = tracker.queue_stats(call.node, queue)
    return stats is not None and call.linkedid in stats.present and call.waits[-1:] == [queue]


def _answered_unseen(
    tracker: Tracker, call: Call, party: LiveChannel | None, queue: str, answered: datetime
) -> None:
    """The caller is bridged with ``party`` (None: with no channel of the call): answered while
    we were not listening, at ``answered`` (an estimate), in ``queue`` (the ``Queue()`` it is
    in, "" if none)."""
    tracker.apply(
        ami.CallFoundAnswered(
            node=call.node,
            uniqueid=call.caller_uniqueid,
            linkedid=call.linkedid,
            party_uniqueid=party.uniqueid if party is not None else "",
            party_channel=party.channel if party is not None else "",
            queue=queue,
        ),
        at=answered,
    )


def _answered_at(call: Call, legs: list[LiveChannel], now: datetime) -> datetime:
    """When a call answered unseen was answered, at best: its youngest leg is the agent's
    side, created when their phone began to ring, a moment before the answer (the caller's
    own legs are as old as the call); never before the caller queued. ``now`` would count all
    the time the server was away as waiting."""
    others = [c.seconds for c in legs if c.uniqueid != call.caller_uniqueid]
    rang = now - timedelta(seconds=min(others)) if others else now
    return min(now, max(rang, call.queued_at or call.arrived_at))


async def resync(client: AmiClient, tracker: Tracker, node: str) -> None:
    """Ask Asterisk for its channels and queues, then reconcile the tracker with them."""
    asked_at = tracker.clock()
    channels = await client.send_action("CoreShowChannels", timeout=30)
    status = await client.send_action("QueueStatus", timeout=30)
    channel_list = channels if isinstance(channels, list) else [channels]
    status_list: list[Message] = status if isinstance(status, list) else [status]
    entries, members = parse_queue_status(status_list, node)
    reconcile(
        tracker,
        node,
        parse_channels(channel_list),
        entries,
        members,
        asked_at=asked_at,
        all_members=isinstance(status, list) and status[0].success,  # the whole list came
    )
