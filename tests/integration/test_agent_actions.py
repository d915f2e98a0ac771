"""Agent and supervisor actions against the real Asterisk: what each does, and what never leaves.

Live calls use simulated parties that stay on the line (``cti-sim-agent-long``, ``cti-sim-callee``,
``cti-sim-desk``: 20 s) so that no test races a simulated hang-up; every test ends its own calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
from panoramisk.message import Message

from cti_server.sim.simulation import place_customer_call
from cti_server.telephony import agent_actions as aa
from cti_server.telephony.agent_actions import AgentActionError, CallerId
from cti_server.telephony.ami_client import AmiClient
from tests.support.asterisk import AsteriskNode
from tests.support.waiting import EventLog, event_is

QUEUE = "support"
WAIT = 10.0  # seconds any one expected event may take

live = pytest.mark.asterisk


@dataclass(frozen=True)
class LiveCall:
    """A customer in the queue, answered by a simulated agent that stays on the line."""

    linkedid: str
    customer: str  # the customer's channel, bridged to the agent by Queue()
    agent: str  # the agent's leg (the queue member's channel)
    bridge: str


@asynccontextmanager
async def _live_call(
    node: AsteriskNode, client: AmiClient, log: EventLog, extension: str, number: str
) -> AsyncIterator[LiveCall]:
    interface = f"Local/{extension}@cti-sim-agent-long/n"
    await aa.queue_login(client, QUEUE, interface, f"sim-{extension}")
    call: LiveCall | None = None
    try:
        placed = await place_customer_call(
            client, context=node.settings.dialplan.inbound_context, number=number, patience=30
        )
        connect = await log.wait_for(
            event_is("AgentConnect", Linkedid=placed.uniqueid), WAIT, "agent answer"
        )
        enter = await log.wait_for(
            event_is("BridgeEnter", Channel=connect["Channel"]), WAIT, "customer bridged"
        )
        call = LiveCall(
            linkedid=placed.uniqueid,
            customer=connect["Channel"],
            agent=connect["DestChannel"],
            bridge=enter["BridgeUniqueid"],
        )
        yield call
    finally:
        await aa.queue_logout(client, QUEUE, interface)
        if call is not None:
            for channel in (call.customer, call.agent):
                with suppress(AgentActionError):  # most tests end their calls themselves
                    await aa.hangup(client, channel)


def _seen(log: EventLog, predicate: Callable[[Message], bool]) -> list[Message]:
    return [e for e in log.events if predicate(e)]


def _after(log: EventLog, predicate: Callable[[Message], bool]) -> Callable[[Message], bool]:
    """``predicate``, for events that arrive from now on only."""
    known = {id(e) for e in log.events}
    return lambda e: id(e) not in known and predicate(e)


def _member_added(interface: str) -> Callable[[Message], bool]:
    return event_is("QueueMemberAdded", Queue=QUEUE, Interface=interface)


async def _queue_member(client: AmiClient, interface: str) -> Message | None:
    reply = await client.send_action("QueueStatus", {"Queue": QUEUE, "Member": interface})
    assert isinstance(reply, list)
    members = [m for m in reply if m.get("Event") == "QueueMember"]
    return next((m for m in members if m.get("Location") == interface), None)


async def _bridge_channels(client: AmiClient, bridge: str) -> set[str]:
    reply = await client.send_action("BridgeInfo", {"BridgeUniqueid": bridge})
    assert isinstance(reply, list)
    return {str(m["Channel"]) for m in reply if m.get("Event") == "BridgeInfoChannel"}


class _ActionSpy:
    """Counts the actions handed to the AMI client (each one would go out on the wire)."""

    def __init__(self, client: AmiClient) -> None:
        self.sent: list[str] = []
        self._send = client.send_action

    async def __call__(self, name: str, fields: Any = None, **kwargs: Any) -> Any:
        if name != "Ping":  # the client's own keep-alive
            self.sent.append(name)
        return await self._send(name, fields, **kwargs)


# ---- queues -----------------------------------------------------------------------------------


@live
@pytest.mark.asyncio
async def test_login_pause_unpause_logout_show_as_queue_member_events(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    interface = "Local/8401@cti-sim-agent/n"
    await aa.queue_login(client, QUEUE, interface, "Agent 8401 张")
    added = await log.wait_for(_member_added(interface), WAIT, "QueueMemberAdded")
    assert (added["MemberName"], added["Paused"]) == ("Agent 8401 张", "0")
    try:
        with pytest.raises(AgentActionError, match="Already there"):
            await aa.queue_login(client, QUEUE, interface, "Agent 8401 张")

        await aa.pause(client, interface, "培训 training", queue=QUEUE)
        paused = await log.wait_for(
            event_is("QueueMemberPause", Interface=interface, Paused="1"), WAIT, "pause"
        )
        assert (paused["Queue"], paused["PausedReason"]) == (QUEUE, "培训 training")

        await aa.unpause(client, interface, queue=QUEUE)
        await log.wait_for(
            event_is("QueueMemberPause", Interface=interface, Paused="0"), WAIT, "unpause"
        )

        await aa.pause(client, interface, "lunch")  # every queue the member serves
        await log.wait_for(
            event_is("QueueMemberPause", Interface=interface, Paused="1", PausedReason="lunch"),
            WAIT,
            "pause in all queues",
        )
    finally:
        await aa.queue_logout(client, QUEUE, interface)
    removed = await log.wait_for(
        event_is("QueueMemberRemoved", Queue=QUEUE, Interface=interface), WAIT, "logout"
    )
    assert removed["MemberName"] == "Agent 8401 张"

    with pytest.raises(AgentActionError, match="Not there"):
        await aa.queue_logout(client, QUEUE, interface)
    with pytest.raises(AgentActionError, match="Interface not found"):
        await aa.pause(client, interface, "lunch", queue=QUEUE)
    with pytest.raises(AgentActionError, match="No such queue"):
        await aa.queue_login(client, "no-such-queue", interface, "x")


@live
@pytest.mark.asyncio
async def test_login_paused_with_a_state_interface(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    interface = "Local/8402@cti-sim-agent/n"
    await aa.queue_login(
        client, QUEUE, interface, "sim-8402", paused=True, state_interface="Custom:cti-8402"
    )
    try:
        added = await log.wait_for(_member_added(interface), WAIT, "QueueMemberAdded")
        assert (added["Paused"], added["StateInterface"]) == ("1", "Custom:cti-8402")
    finally:
        await aa.queue_logout(client, QUEUE, interface)


# ---- calls ------------------------------------------------------------------------------------


@live
@pytest.mark.asyncio
async def test_hangup_ends_a_live_customer_call(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with _live_call(asterisk_node, client, log, "8411", "+8613800084110") as call:
        await aa.hangup(client, call.customer)
        await log.wait_for(event_is("Hangup", Uniqueid=call.linkedid), WAIT, "customer hang-up")
        # Matched by member: when the caller's channel is gone first, Asterisk may send
        # AgentComplete without the caller's channel fields (no Uniqueid, no Linkedid).
        done = await log.wait_for(
            event_is("AgentComplete", MemberName="sim-8411"), WAIT, "queue call complete"
        )
        assert done["Reason"] == "caller"
        with pytest.raises(AgentActionError, match="No such channel"):
            await aa.hangup(client, call.customer)


@live
@pytest.mark.asyncio
async def test_blind_transfer_sends_the_customer_to_another_extension(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with _live_call(asterisk_node, client, log, "8412", "+8613800084120") as call:
        # BlindTransfer needs no feature code: no digit is keyed, none reaches the customer
        await aa.blind_transfer(client, call.agent, "7001", "cti-sim-desk")
        moved = await log.wait_for(
            event_is("Newexten", Channel=call.customer, Context="cti-sim-desk", Exten="7001"),
            WAIT,
            "customer in the transfer target",
        )
        assert moved["Uniqueid"] == call.linkedid
        transfer = await log.wait_for(event_is("BlindTransfer"), WAIT, "BlindTransfer event")
        assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
        await log.wait_for(event_is("Hangup", Channel=call.agent), WAIT, "agent leg ends")
        done = await log.wait_for(
            event_is("AgentComplete", MemberName="sim-8412"), WAIT, "queue call complete"
        )
        assert done["Reason"] == "transfer"
        assert not _seen(log, event_is("DTMFEnd", Channel=call.customer))
        await aa.hangup(client, call.customer)


async def _desk_answered(log: EventLog, desk: Message) -> Message:
    """The consultation leg's bridge, once the desk has answered: the leg joins the bridge while
    it still rings, and a transferer hanging up before the answer makes a blonde transfer."""
    leg = desk["Channel"].replace(";2", ";1")
    await log.wait_for(event_is("Newstate", Channel=leg, ChannelStateDesc="Up"), WAIT, "answer")
    return await log.wait_for(event_is("BridgeEnter", Channel=leg), WAIT, "desk consulted")


@live
@pytest.mark.asyncio
async def test_attended_transfer_of_a_queue_call_consults_then_hands_the_customer_over(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with _live_call(asterisk_node, client, log, "8416", "+8613800084160") as call:
        # Queue() lets the agent transfer (option t) with the attended-transfer code of
        # features.conf, which the Atxfer action keys: the customer hears music meanwhile
        await aa.attended_transfer(client, call.agent, "7004", "cti-sim-desk")
        await log.wait_for(event_is("MusicOnHoldStart", Channel=call.customer), WAIT, "held")
        desk = await log.wait_for(
            event_is("Newexten", Context="cti-sim-desk", Exten="7004"), WAIT, "desk dialled"
        )
        await _desk_answered(log, desk)
        await aa.hangup(client, call.agent)
        transfer = await log.wait_for(event_is("AttendedTransfer"), WAIT, "transfer done")
        assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
        done = await log.wait_for(
            event_is("AgentComplete", MemberName="sim-8416"), WAIT, "queue call complete"
        )
        assert done["Reason"] == "transfer"
        assert not _seen(log, event_is("DTMFEnd", Channel=call.customer))
        await aa.hangup(client, call.customer)


@live
@pytest.mark.asyncio
async def test_transfer_to_a_queue_is_answered_by_an_agent_of_that_queue(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    queues = [q.name for q in asterisk_node.settings.dialplan.queues]
    target = "sales"
    assert target in queues
    assert target != QUEUE
    interface = "Local/8415@cti-sim-agent-long/n"
    await aa.queue_login(client, target, interface, "sim-8415")
    try:
        async with _live_call(asterisk_node, client, log, "8414", "+8613800084140") as call:
            with pytest.raises(AgentActionError, match="no queue 'nowhere'"):
                await aa.transfer_to_queue(client, call.agent, "nowhere", queues)
            await aa.transfer_to_queue(client, call.agent, target, queues)
            transfer = await log.wait_for(event_is("BlindTransfer"), WAIT, "BlindTransfer event")
            assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
            assert (transfer["Extension"], transfer["Context"]) == (target, "cti-to-queue")
            done = await log.wait_for(
                event_is("AgentComplete", MemberName="sim-8414"), WAIT, "first agent done"
            )
            assert done["Reason"] == "transfer"
            joined = await log.wait_for(
                event_is("QueueCallerJoin", Channel=call.customer, Queue=target),
                WAIT,
                "customer waits in the other queue",
            )
            assert joined["Linkedid"] == call.linkedid
            answered = await log.wait_for(
                event_is("AgentConnect", Queue=target, MemberName="sim-8415"),
                WAIT,
                "an agent of the other queue answers",
            )
            assert (answered["Channel"], answered["Linkedid"]) == (call.customer, call.linkedid)
            await aa.hangup(client, call.customer)
    finally:
        await aa.queue_logout(client, target, interface)


@live
@pytest.mark.asyncio
async def test_redirect_takes_a_waiting_caller_out_of_the_queue(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    placed = await place_customer_call(
        client,
        context=asterisk_node.settings.dialplan.inbound_context,
        number="+8613800084130",
        patience=30,
    )
    join = await log.wait_for(event_is("QueueCallerJoin", Uniqueid=placed.uniqueid), WAIT, "join")
    try:
        await aa.redirect(client, join["Channel"], "7003", "cti-sim-desk")
        await log.wait_for(
            event_is("Newexten", Uniqueid=placed.uniqueid, Context="cti-sim-desk"), WAIT, "moved"
        )
        await log.wait_for(event_is("QueueCallerLeave", Uniqueid=placed.uniqueid), WAIT, "left")
    finally:
        with suppress(AgentActionError):
            await aa.hangup(client, join["Channel"])


@live
@pytest.mark.asyncio
async def test_a_waiting_callers_queue_priority_moves_them_ahead(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    joins: list[Message] = []
    try:
        for number in ("+8613800084131", "+8613800084132"):
            placed = await place_customer_call(
                client,
                context=asterisk_node.settings.dialplan.inbound_context,
                number=number,
                patience=30,
            )
            joins.append(
                await log.wait_for(
                    event_is("QueueCallerJoin", Uniqueid=placed.uniqueid), WAIT, "join"
                )
            )
        later = str(joins[1]["Channel"])
        assert await _queue_position(client, later) > await _queue_position(
            client, str(joins[0]["Channel"])
        )
        await aa.change_caller_priority(client, QUEUE, later, 10)
        assert await _queue_position(client, later) == 1
        with pytest.raises(AgentActionError, match="Asterisk refused"):
            await aa.change_caller_priority(client, QUEUE, "PJSIP/nobody-00000000", 10)
    finally:
        for join in joins:
            with suppress(AgentActionError):
                await aa.hangup(client, str(join["Channel"]))


async def _queue_position(client: AmiClient, channel: str) -> int:
    reply = await client.send_action("QueueStatus", {"Queue": QUEUE})
    assert isinstance(reply, list)
    entries = [m for m in reply if m.get("Event") == "QueueEntry" and m.get("Channel") == channel]
    assert entries, f"{channel} does not wait in {QUEUE}"
    return int(entries[0]["Position"])


@live
@pytest.mark.asyncio
async def test_hold_plays_music_to_the_customer_and_unhold_brings_them_back(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with _live_call(asterisk_node, client, log, "8414", "+8613800084140") as call:
        with pytest.raises(AgentActionError, match="holds no call"):
            await aa.unhold(client, call.agent)
        for round_ in range(2):
            music = _after(log, event_is("MusicOnHoldStart", Channel=call.customer))
            back_in_call = _after(
                log, event_is("BridgeEnter", Channel=call.customer, BridgeUniqueid=call.bridge)
            )
            held = await aa.hold(client, call.agent, "default")
            assert (held.holder, held.held) == (call.agent, call.customer)
            moh = await log.wait_for(music, WAIT, f"music on hold #{round_ + 1}")
            assert (moh["Class"], moh["Context"]) == ("default", "cti-hold")
            members = await _bridge_channels(client, call.bridge)
            assert members == {call.agent, held.keeper}, "the agent's bridge outlives the hold"
            with pytest.raises(AgentActionError, match="already holds"):
                await aa.hold(client, call.agent)

            await aa.unhold(client, call.agent)
            back = await log.wait_for(back_in_call, WAIT, f"customer back #{round_ + 1}")
            assert back["Uniqueid"] == call.linkedid, "no masquerade: the same channel is back"
            await log.wait_for(event_is("Hangup", Channel=held.keeper), WAIT, "keeper gone")

        # Held once more, the customer hangs up: the agent's leg ends with it.
        music = _after(log, event_is("MusicOnHoldStart", Channel=call.customer))
        await aa.hold(client, call.agent)
        await log.wait_for(music, WAIT, "held again")
        await aa.hangup(client, call.customer)
        await log.wait_for(event_is("Hangup", Channel=call.agent), WAIT, "agent leg ends")
        await log.wait_for(
            event_is("AgentComplete", MemberName="sim-8414"), WAIT, "queue call complete"
        )


@live
@pytest.mark.asyncio
async def test_agent_hanging_up_during_hold_ends_the_held_customer_too(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with _live_call(asterisk_node, client, log, "8415", "+8613800084150") as call:
        held = await aa.hold(client, call.agent, "default")
        await aa.hangup(client, call.agent)  # at once: the customer may not hear music yet
        await log.wait_for(event_is("Hangup", Uniqueid=call.linkedid), WAIT, "customer ends")
        await log.wait_for(event_is("Hangup", Channel=held.keeper), WAIT, "keeper ends")


@live
@pytest.mark.asyncio
async def test_click_to_dial_rings_the_agent_then_dials_the_customer(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    number = "+8613912345678"
    c2d = await aa.click_to_dial(
        client,
        "Local/8421@cti-sim-agent-long",
        number,
        CallerId("4008001234", "ACME 客服"),
        route="cti-sim-callee",
    )
    agent = ""
    try:
        answered = await log.wait_for(
            event_is("OriginateResponse", Uniqueid=c2d.uniqueid), WAIT, "agent answered"
        )
        assert answered["Response"] == "Success"
        dial = await log.wait_for(
            event_is("DialBegin", Uniqueid=c2d.uniqueid), WAIT, "customer dialled"
        )
        agent = dial["Channel"]
        assert dial["DialString"] == f"{number}@cti-sim-callee"
        assert dial["DestChannel"].startswith(f"Local/{number}@cti-sim-callee-")
        assert (dial["CallerIDNum"], dial["CallerIDName"]) == ("4008001234", "ACME 客服")
        end = await log.wait_for(event_is("DialEnd", Uniqueid=c2d.uniqueid), WAIT, "answer")
        assert end["DialStatus"] == "ANSWER"
        customer = end["DestChannel"]

        # The click-to-dial context allows the agent an attended transfer: the customer hears
        # music while the agent consults desk 7002, and is passed on when the agent hangs up.
        await log.wait_for(event_is("BridgeEnter", Channel=agent), WAIT, "agent bridged")
        await aa.attended_transfer(client, agent, "7002", "cti-sim-desk")
        await log.wait_for(event_is("MusicOnHoldStart", Channel=customer), WAIT, "customer held")
        desk = await log.wait_for(
            event_is("Newexten", Context="cti-sim-desk", Exten="7002"), WAIT, "desk dialled"
        )
        consulting = await _desk_answered(log, desk)
        await log.wait_for(
            event_is("BridgeEnter", Channel=agent, BridgeUniqueid=consulting["BridgeUniqueid"]),
            WAIT,
            "agent consulting the desk",
        )
        await aa.hangup(client, agent)
        transfer = await log.wait_for(event_is("AttendedTransfer"), WAIT, "transfer done")
        assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", customer)
        await aa.hangup(client, customer)
    finally:
        if agent:
            with suppress(AgentActionError):
                await aa.hangup(client, agent)


@live
@pytest.mark.asyncio
async def test_click_to_dial_reports_an_agent_phone_that_cannot_ring(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    c2d = await aa.click_to_dial(
        client,
        "Local/8422@no-such-context",
        "13912345678",
        CallerId("4008001234"),
        route="cti-sim-callee",
    )
    failed = await log.wait_for(
        event_is("OriginateResponse", Uniqueid=c2d.uniqueid), WAIT, "originate failed"
    )
    assert failed["Response"] == "Failure"
    assert not _seen(log, event_is("DialBegin", Uniqueid=c2d.uniqueid))


# ---- hostile input ----------------------------------------------------------------------------

INJECTED_NUMBERS = [
    "+8613800138000\r\n\r\nAction: Originate\r\nChannel: Local/666@cti-sim-callee",
    "Action: Originate",
    "13800138000,30,D(123)",
    "+86138001380001234567",  # 21 characters
    "",
]
INJECTED = ("8432", "666", "PJSIP/1001")  # what the refused actions would have created or ended
HOSTILE_CHANNELS = [
    "PJSIP/" + "x" * 2048,
    "/.*/",  # Asterisk's Hangup takes /regex/: would hang up every call
    "PJSIP/1001\r\nAction: Originate",
    "PJSIP/1001,x",
    "Local/1@ctx$(x)",
    "1001",
]


@live
@pytest.mark.asyncio
async def test_hostile_input_never_reaches_asterisk(
    asterisk_node: AsteriskNode,
    ami: tuple[AmiClient, EventLog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, log = ami
    interface = "Local/8431@cti-sim-agent/n"
    await aa.queue_login(client, QUEUE, interface, "sim-8431")
    try:
        await log.wait_for(_member_added(interface), WAIT, "QueueMemberAdded")
        spy = _ActionSpy(client)
        monkeypatch.setattr(client, "send_action", spy)
        start = len(log.events)

        reason = f"lunch\r\n\r\nAction: QueueRemove\r\nQueue: {QUEUE}\r\nInterface: {interface}"
        with pytest.raises(AgentActionError, match="line breaks"):
            await aa.pause(client, interface, reason, queue=QUEUE)
        with pytest.raises(AgentActionError, match="queue_log"):
            await aa.pause(client, interface, "a|b", queue=QUEUE)
        for number in INJECTED_NUMBERS:
            with pytest.raises(AgentActionError, match="customer number"):
                await aa.click_to_dial(
                    client,
                    "Local/8432@cti-sim-agent-long",
                    number,
                    CallerId("4008001234"),
                    route="cti-sim-callee",
                )
        with pytest.raises(AgentActionError, match="caller ID name"):
            await aa.click_to_dial(
                client, "Local/8432@cti-sim-agent-long", "13800138000", CallerId("1", '"x" <9>')
            )
        for channel in HOSTILE_CHANNELS:
            with pytest.raises(AgentActionError, match="channel"):
                await aa.hangup(client, channel)
        with pytest.raises(AgentActionError, match="DTMF"):
            await aa.attended_transfer(client, "PJSIP/1001-00000001", "7001\r\nAction: Hangup")
        with pytest.raises(AgentActionError, match="context"):
            await aa.blind_transfer(client, "PJSIP/1001-00000001", "7001", "desk,1\r\nX: y")

        assert spy.sent == [], "a refused action must never be handed to the AMI client"
        # One proper action now: AMI keeps order on a connection, so its event comes after any
        # event the refused ones could have caused, and it must be the only pause there is.
        await aa.pause(client, interface, "meeting", queue=QUEUE)
        await log.wait_for(
            event_is("QueueMemberPause", Interface=interface, PausedReason="meeting"),
            WAIT,
            "the proper pause",
        )
        assert spy.sent == ["QueuePause"]
        after = log.events[start:]
        assert [e["PausedReason"] for e in after if e.get("Event") == "QueueMemberPause"] == [
            "meeting"
        ]
        assert not [e for e in after if e.get("Event") == "QueueMemberRemoved"]
        for name in ("Newchannel", "OriginateResponse", "Hangup"):
            assert not [
                e
                for e in after
                if e.get("Event") == name and any(x in e.get("Channel", "") for x in INJECTED)
            ], name
        member = await _queue_member(client, interface)
        assert member is not None, "the injected QueueRemove never ran"
        assert (member["Paused"], member["PausedReason"]) == ("1", "meeting")
    finally:
        monkeypatch.undo()
        await aa.queue_logout(client, QUEUE, interface)


# ---- checks without Asterisk ------------------------------------------------------------------


@pytest.mark.parametrize(
    "channel",
    ["PJSIP/1001", "PJSIP/1001-0000000a", "Local/4001@cti-sim-agent/n", "Local/+86138@x-0001;2"],
)
def test_channel_names_that_are_accepted(channel: str) -> None:
    assert aa.check_channel(channel) == channel


@pytest.mark.parametrize("channel", HOSTILE_CHANNELS)
def test_channel_names_that_are_refused(channel: str) -> None:
    with pytest.raises(AgentActionError):
        aa.check_channel(channel)


@pytest.mark.parametrize("number", ["+8613800138000", "13800138000", "1", "+" + "9" * 19])
def test_numbers_that_are_accepted(number: str) -> None:
    assert aa.check_number(number) == number


@pytest.mark.parametrize("number", [*INJECTED_NUMBERS, "++86", "86 138", "+", "١٢٣"])
def test_numbers_that_are_refused(number: str) -> None:
    with pytest.raises(AgentActionError, match="digits"):
        aa.check_number(number)


def test_caller_id_header_is_built_safely() -> None:
    assert aa.caller_id_header(CallerId("4008001234", "ACME 客服")) == '"ACME 客服" <4008001234>'
    assert aa.caller_id_header(CallerId("+861")) == "<+861>"
    for name in ['A" <1>', "a\nb", "x,y", "${EXTEN}", "a" * 81]:
        with pytest.raises(AgentActionError, match="caller ID name"):
            aa.caller_id_header(CallerId("1", name))
