"""What an agent or a supervisor does to calls and queues, as checked AMI actions.

Every function takes the :class:`AmiClient` first, checks its arguments before anything is sent
and raises :class:`AgentActionError` with a readable message when an argument is refused or when
Asterisk refuses the action. (A link that is down still raises :class:`AmiDisconnected`, a reply
that never comes :class:`TimeoutError`: those are not the agent's doing.)

Two layers keep outside text from reaching Asterisk as anything but one header value: the checks
here (channel names, numbers, names of contexts, queues and music classes must match strict
patterns; free text such as a pause reason may not hold control characters or ``|``, the
queue_log separator) and :func:`build_action`, through which every action goes. The strict
patterns matter beyond AMI framing: a ``Hangup`` whose channel is ``/regex/`` hangs up every
channel that matches, and channel names travel on into dialplan applications (``SoftHangup``,
``BridgeAdd``), where a comma would start another argument. So a channel must look like
``Tech/resource`` with no comma, space, bracket or ``$``.

Hold, done by the CTI rather than by the phone (a PJSIP phone holds with a re-INVITE of its own):
Asterisk 22 has no AMI action that plays music on hold to a channel (the old ``MusicOnHold``
action is gone) and our AMI user may not run CLI commands or mute audio (``MuteAudio`` needs the
``system`` privilege). A plain Redirect of the far party into a music context and an AMI
``Bridge`` back was tried and rejected: when the far party leaves a queue call's two-party bridge,
Asterisk hangs up the agent's leg; when both legs are redirected, ``Bridge`` has to "yank" a
channel (a masquerade) to join them again, after which app_queue writes the call's end to
queue_log under the surrogate channel's uniqueid and sends no ``AgentComplete``, which breaks the
call records. What works, with the call, agent and originate privileges only (see the
``cti-hold`` context in ``dialplans/extensions.conf.j2``):

1. a silent *keeper* (``Local/keeper@cti-hold``, originated with the ``BridgeAdd`` application)
   joins the bridge of the holding party, so that bridge, and app_queue's record of the call,
   outlive the far party's absence;
2. the far party is Redirected to ``cti-hold,held``: music on hold of the class asked for;
3. unhold Redirects it to ``cti-hold,resume``, which ``BridgeAdd``-s it back into the holding
   party's bridge (no masquerade: the channel keeps its name and uniqueid), and the keeper hangs up.

The channels carry the hold's state in ``CTI_HOLD_*`` variables, so a restarted CTI server can
still unhold, and the dialplan ends the other side when either party hangs up during the hold.
Asterisk reports ``MusicOnHoldStart``/``MusicOnHoldStop`` on the held channel, not the ``Hold``
and ``Unhold`` events a phone's own hold produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from panoramisk.message import Message

from cti_server.telephony.ami_actions import ActionValue, AmiActionError, originate_variables
from cti_server.telephony.ami_client import AmiClient

ACTION_TIMEOUT = 10.0
MAX_CHANNEL_CHARS = 200
MAX_TEXT_CHARS = 80
MAX_NUMBER_CHARS = 20

CLICK_TO_DIAL_CONTEXT = "cti-click-to-dial"
OUTBOUND_ROUTE = "cti-outbound"  # the deployment's context that reaches customers (its trunk)
HOLD_CONTEXT = "cti-hold"
QUEUE_TRANSFER_CONTEXT = "cti-to-queue"  # one extension per configured queue, named like it

# Tech/resource, as Asterisk names channels and as Dial and Originate take them: a technology
# name, a slash, then no comma, blank, bracket, quote, "$" or "&" (nor a leading "/": regex mode).
# All patterns here are used with fullmatch.
_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}/[A-Za-z0-9@._;:+/=-]+")
# A device state interface may also be hint:<exten>@<context> or Custom:<name>.
_STATE_INTERFACE = re.compile(r"(?:[A-Za-z][A-Za-z0-9_]{0,31}/|hint:|Custom:)[A-Za-z0-9@._;:+/=-]+")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,79}")  # contexts, queues, music classes
_EXTEN = re.compile(r"[A-Za-z0-9*#+_-]{1,79}")
_DTMF_EXTEN = re.compile(r"[0-9*#]{1,20}")  # Atxfer sends the extension as DTMF digits
_NUMBER = re.compile(r"\+?[0-9]{1,19}")  # digits and one leading +, at most 20 characters
# Characters a caller ID name may not carry: they end the quoted name, open the number, or
# separate dialplan arguments where the name travels on (Set(CALLERID(all)=...)).
_CALLERID_NAME_UNSAFE = frozenset('"<>\\,;|$^{}[]()')


class AgentActionError(Exception):
    """An agent action was not carried out: a refused argument, or Asterisk said no."""


@dataclass(frozen=True)
class CallerId:
    """What the customer sees when we call them: a number and an optional name."""

    number: str
    name: str = ""


@dataclass(frozen=True)
class HeldCall:
    """A call on CTI hold: who holds it, who listens to music, and the keeper of the bridge."""

    holder: str
    held: str
    keeper: str


@dataclass(frozen=True)
class ClickToDialCall:
    """The agent's leg of a click-to-dial call: its uniqueid appears in every event of that leg."""

    uniqueid: str
    agent_endpoint: str
    customer_number: str


@dataclass(frozen=True)
class _ChannelState:
    name: str
    uniqueid: str
    bridge: str


# ---- checks -----------------------------------------------------------------------------------


def check_channel(channel: str, what: str = "channel") -> str:
    """``channel`` if it is a safe ``Tech/resource`` name, else AgentActionError."""
    if not channel:
        raise AgentActionError(f"{what} is empty")
    if len(channel) > MAX_CHANNEL_CHARS:
        raise AgentActionError(f"{what} is longer than {MAX_CHANNEL_CHARS} characters")
    if not _CHANNEL.fullmatch(channel):
        raise AgentActionError(f"{what} {_show(channel)} is not a channel name (Tech/resource)")
    return channel


def check_number(number: str, what: str = "number") -> str:
    """A dialable number: digits with an optional leading +, at most 20 characters."""
    if not _NUMBER.fullmatch(number):
        raise AgentActionError(
            f"{what} {_show(number)} must be digits with an optional leading +, "
            f"at most {MAX_NUMBER_CHARS} characters"
        )
    return number


def caller_id_header(caller_id: CallerId) -> str:
    """``"name" <number>`` (or ``<number>``), refusing what would break it."""
    number = check_number(caller_id.number, "caller ID number")
    name = _check_text(caller_id.name, "caller ID name", allow_empty=True)
    if any(ch in _CALLERID_NAME_UNSAFE for ch in name):
        raise AgentActionError(
            f"caller ID name {_show(name)} holds a character that is not allowed"
        )
    return f'"{name}" <{number}>' if name else f"<{number}>"


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise AgentActionError(f"{what} {_show(value)} must be 1-79 letters, digits, - or _")
    return value


def _check_exten(value: str, what: str = "extension") -> str:
    if not _EXTEN.fullmatch(value):
        raise AgentActionError(f"{what} {_show(value)} is not an extension")
    return value


def _check_text(value: str, what: str, *, allow_empty: bool = False) -> str:
    """Free text (a pause reason, a member name): printable, no ``|``, at most 80 characters."""
    if not value and not allow_empty:
        raise AgentActionError(f"{what} is empty")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise AgentActionError(f"{what} may not hold line breaks or other control characters")
    if "|" in value:
        raise AgentActionError(f"{what} may not hold '|' (it separates queue_log fields)")
    if len(value) > MAX_TEXT_CHARS:
        raise AgentActionError(f"{what} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _check_seconds(value: int, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AgentActionError(f"{what} must be a whole number of seconds from {low} to {high}")
    return value


def _show(value: object) -> str:
    """A bounded, escaped rendering of refused input for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


# ---- sending ----------------------------------------------------------------------------------


async def send(
    ami: AmiClient,
    action: str,
    fields: Mapping[str, ActionValue],
    what: str,
    *,
    timeout: float = ACTION_TIMEOUT,
) -> list[Message]:
    """Send one action; its reply as a list (Response first); AgentActionError if refused.

    Every AMI action of an agent, a supervisor or the router goes through here (``what`` says
    what was meant, for the error)."""
    try:
        reply = await ami.send_action(action, fields, timeout=timeout)
    except AmiActionError as exc:
        raise AgentActionError(f"{what}: not sent: {exc}") from exc
    messages = reply if isinstance(reply, list) else [reply]
    first = messages[0]
    if not first.success:
        raise AgentActionError(f"{what}: Asterisk refused: {first.get('Message', 'no reason')}")
    return messages


def _events(messages: list[Message], name: str) -> list[Message]:
    return [m for m in messages if m.get("Event") == name]


async def _channel_state(ami: AmiClient, channel: str) -> _ChannelState:
    reply = await send(ami, "Status", {"Channel": channel}, f"status of {channel}")
    for event in _events(reply, "Status"):
        if event.get("Channel") == channel:
            return _ChannelState(
                name=channel,
                uniqueid=str(event.get("Uniqueid", "")),
                bridge=str(event.get("BridgeID", "")),
            )
    raise AgentActionError(f"status of {channel}: Asterisk does not know this channel")


async def _bridge_members(ami: AmiClient, bridge: str) -> list[_ChannelState]:
    reply = await send(ami, "BridgeInfo", {"BridgeUniqueid": bridge}, f"bridge {bridge}")
    return [
        _ChannelState(str(e.get("Channel", "")), str(e.get("Uniqueid", "")), bridge)
        for e in _events(reply, "BridgeInfoChannel")
    ]


async def getvar(
    ami: AmiClient, channel: str, variable: str, *, timeout: float = ACTION_TIMEOUT
) -> str:
    """The value of ``variable`` on ``channel`` ("" when unset)."""
    reply = await send(
        ami,
        "Getvar",
        {"Channel": channel, "Variable": variable},
        f"{variable} of {channel}",
        timeout=timeout,
    )
    return str(reply[0].get("Value", "") or "")


async def _setvars(ami: AmiClient, channel: str, variables: Mapping[str, str]) -> None:
    for variable, value in variables.items():
        await send(
            ami,
            "Setvar",
            {"Channel": channel, "Variable": variable, "Value": value},
            f"set {variable} on {channel}",
        )


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; AgentActionError at the deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AgentActionError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(0.02)


# ---- queues -----------------------------------------------------------------------------------


async def queue_login(
    ami: AmiClient,
    queue: str,
    interface: str,
    member_name: str,
    *,
    paused: bool = False,
    state_interface: str | None = None,
    penalty: int = 0,
) -> None:
    """Add ``interface`` to ``queue`` as ``member_name`` (QueueAdd; ``QueueMemberAdded``)."""
    _check_name(queue, "queue")
    check_channel(interface, "interface")
    _check_text(member_name, "member name")
    if isinstance(penalty, bool) or not isinstance(penalty, int) or not 0 <= penalty <= 1000:
        raise AgentActionError("penalty must be a whole number from 0 to 1000")
    fields: dict[str, ActionValue] = {
        "Queue": queue,
        "Interface": interface,
        "MemberName": member_name,
        "Penalty": str(penalty),
        "Paused": "true" if paused else "false",
    }
    if state_interface is not None:
        if len(state_interface) > MAX_CHANNEL_CHARS or not _STATE_INTERFACE.fullmatch(
            state_interface
        ):
            raise AgentActionError(f"state interface {_show(state_interface)} is not allowed")
        fields["StateInterface"] = state_interface
    await send(ami, "QueueAdd", fields, f"log {interface} in to queue {queue}")


async def queue_logout(ami: AmiClient, queue: str, interface: str) -> None:
    """Remove ``interface`` from ``queue`` (QueueRemove; ``QueueMemberRemoved``)."""
    _check_name(queue, "queue")
    check_channel(interface, "interface")
    await send(
        ami,
        "QueueRemove",
        {"Queue": queue, "Interface": interface},
        f"log {interface} out of queue {queue}",
    )


async def pause(ami: AmiClient, interface: str, reason: str, queue: str | None = None) -> None:
    """Pause ``interface`` in ``queue``, or in every queue it serves when ``queue`` is None.

    Asterisk reports ``QueueMemberPause`` with ``Paused: 1`` and the reason as ``PausedReason``
    (and writes it to queue_log, hence no ``|`` in it).
    """
    check_channel(interface, "interface")
    _check_text(reason, "pause reason")
    fields: dict[str, ActionValue] = {"Interface": interface, "Paused": "true", "Reason": reason}
    if queue is not None:
        fields["Queue"] = _check_name(queue, "queue")
    await send(ami, "QueuePause", fields, f"pause {interface}")


async def unpause(ami: AmiClient, interface: str, queue: str | None = None) -> None:
    """Make ``interface`` available again in ``queue`` (or in all its queues)."""
    check_channel(interface, "interface")
    fields: dict[str, ActionValue] = {"Interface": interface, "Paused": "false"}
    if queue is not None:
        fields["Queue"] = _check_name(queue, "queue")
    await send(ami, "QueuePause", fields, f"unpause {interface}")


async def change_caller_priority(ami: AmiClient, queue: str, caller: str, priority: int) -> None:
    """Give ``caller`` (the channel waiting in ``queue``) the queue priority ``priority``
    (QueueChangePriorityCaller, moved at once): app_queue offers higher priorities first. This
    is how a call's priority changes with plain queues; the router keeps its own priority."""
    _check_name(queue, "queue")
    check_channel(caller, "caller channel")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1000:
        raise AgentActionError("queue priority must be a whole number from 0 to 1000")
    await send(
        ami,
        "QueueChangePriorityCaller",
        {"Queue": queue, "Caller": caller, "Priority": str(priority), "Immediate": "yes"},
        f"change the priority of {caller} in queue {queue}",
    )


# ---- calls ------------------------------------------------------------------------------------


async def hangup(ami: AmiClient, channel: str) -> None:
    """Hang up exactly ``channel`` (never a regex: names starting with "/" are refused)."""
    check_channel(channel)
    await send(ami, "Hangup", {"Channel": channel}, f"hang up {channel}")


async def redirect(
    ami: AmiClient, channel: str, exten: str, context: str, priority: int = 1
) -> None:
    """Send ``channel`` itself to ``exten@context`` (Redirect), e.g. a caller waiting in a queue.

    A channel in a two-party bridge leaves it and its peer is hung up: to pass on a call an
    agent is talking to, use :func:`blind_transfer`.
    """
    check_channel(channel)
    _check_exten(exten)
    _check_name(context, "context")
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 1:
        raise AgentActionError("priority must be a whole number from 1")
    await send(
        ami,
        "Redirect",
        {"Channel": channel, "Exten": exten, "Context": context, "Priority": str(priority)},
        f"redirect {channel} to {exten}@{context}",
    )


async def blind_transfer(ami: AmiClient, channel: str, exten: str, context: str) -> None:
    """Transfer the party talking to ``channel`` (the agent's leg) to ``exten@context``.

    BlindTransfer, as if the agent's phone had transferred: whoever is bridged with ``channel``
    goes to the destination and ``channel`` is hung up; app_queue writes BLINDTRANSFER to
    queue_log and sends ``AgentComplete`` with ``Reason: transfer``. Asterisk refuses ("Transfer
    invalid") when ``channel`` is in no bridge. It does not check that the destination exists:
    a wrong one ends the transferred call there.
    """
    check_channel(channel)
    _check_exten(exten)
    _check_name(context, "context")
    await send(
        ami,
        "BlindTransfer",
        {"Channel": channel, "Exten": exten, "Context": context},
        f"transfer the call of {channel} to {exten}@{context}",
    )


async def transfer_to_queue(
    ami: AmiClient, channel: str, queue: str, queues: Collection[str]
) -> None:
    """Blind-transfer the party talking to ``channel`` into ``queue``, one of ``queues``.

    ``queues`` are the configured queues: the dialplan's ``cti-to-queue`` has an extension for
    each and none other, and Asterisk does not check a transfer's destination (a wrong one would
    end the customer's call), so any other name is refused here, before anything is sent. With
    routing on, that extension waits in the queue the router's way (``cti-routed``).
    """
    if queue not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise AgentActionError(f"no queue {_show(queue)} to transfer to (queues: {known})")
    await blind_transfer(ami, channel, queue, QUEUE_TRANSFER_CONTEXT)


async def attended_transfer(
    ami: AmiClient, channel: str, exten: str, context: str | None = None
) -> None:
    """Start an attended transfer for the agent's leg ``channel`` (Atxfer) to ``exten``.

    Asterisk works it like the phone's own keys: it presses the channel's attended-transfer
    code and then ``exten`` as DTMF, so ``exten`` must be digits, ``*`` or ``#``. The far party
    hears music on hold while the agent consults ``exten``; the agent completes the transfer by
    hanging up. The code comes from the rendered features.conf (``[dialplan]
    attended_transfer_code``), and our dialplan grants the agent's side the transfer (Queue
    option t, Dial option T for click-to-dial, tT between agents); without a code Asterisk
    refuses with "No attended transfer feature code found", and without the option the digits
    would reach the customer. "Successfully queued" means the digits were queued, not that the
    transfer happened: the tracker tells it (``CallTransferred``) once the target has the
    customer.
    """
    check_channel(channel)
    if not _DTMF_EXTEN.fullmatch(exten):
        raise AgentActionError(f"extension {_show(exten)} must be 1-20 DTMF digits (0-9, *, #)")
    fields: dict[str, ActionValue] = {"Channel": channel, "Exten": exten}
    if context is not None:
        fields["Context"] = _check_name(context, "context")
    await send(ami, "Atxfer", fields, f"attended transfer of {channel} to {exten}")


async def hold(
    ami: AmiClient, channel: str, music_class: str = "default", *, timeout: float = 5.0
) -> HeldCall:
    """Put the party talking to ``channel`` (the agent's leg) on hold with ``music_class``.

    See the module docstring for how and why. Refused when ``channel`` is in no two-party call
    or already holds one.
    """
    check_channel(channel)
    _check_name(music_class, "music class")
    holder = await _channel_state(ami, channel)
    if await getvar(ami, channel, "CTI_HOLD_HELD"):
        raise AgentActionError(f"hold: {channel} already holds a call")
    if not holder.bridge:
        raise AgentActionError(f"hold: {channel} is not talking to anyone")
    others = [m for m in await _bridge_members(ami, holder.bridge) if m.name != channel]
    if len(others) != 1:
        raise AgentActionError(f"hold: {channel} is in a call of {len(others) + 1} parties, not 2")
    held = others[0]
    check_channel(held.name, "held channel")
    holder_id = _check_uniqueid(holder.uniqueid)
    keeper_id = f"cti-hold-{uuid.uuid4().hex[:16]}"
    keeper = ""
    try:
        # Armed before the move, so that no hang-up in between is missed: from here on, either
        # party hanging up ends the other (the h extension of cti-hold).
        await _setvars(
            ami,
            held.name,
            {
                "CTI_HOLD_PEER": channel,
                "CTI_HOLD_PEER_ID": holder_id,
                "CTI_HOLD_CLASS": music_class,
                "CTI_HOLD_ACTIVE": "1",
            },
        )
        await send(
            ami,
            "Originate",
            {
                "Channel": f"Local/keeper@{HOLD_CONTEXT}/n",
                "Application": "BridgeAdd",
                "Data": holder_id,
                "Async": "true",
                "ChannelId": keeper_id,
                "OtherChannelId": f"{keeper_id}-k",
                "Variable": originate_variables({"CTI_HOLD_HELD": held.name}),
            },
            f"hold {held.name}: keeper",
        )

        async def _keeper_joined() -> bool:
            nonlocal keeper
            members = await _bridge_members(ami, holder.bridge)
            keeper = next((m.name for m in members if m.uniqueid == keeper_id), "")
            return bool(keeper)

        await _until(_keeper_joined, timeout, f"hold {held.name}: the keeper joining the call")
        check_channel(keeper, "keeper channel")
        await _setvars(ami, channel, {"CTI_HOLD_HELD": held.name, "CTI_HOLD_KEEPER": keeper})
        await send(
            ami,
            "Redirect",
            {"Channel": held.name, "Context": HOLD_CONTEXT, "Exten": "held", "Priority": "1"},
            f"hold {held.name}",
        )
    except AgentActionError:
        with contextlib.suppress(AgentActionError):  # disarm first: the keeper's end would hang up
            await _setvars(ami, held.name, {"CTI_HOLD_ACTIVE": ""})
        await _release_keeper(ami, channel, keeper)
        raise
    return HeldCall(holder=channel, held=held.name, keeper=keeper)


async def unhold(ami: AmiClient, channel: str, *, timeout: float = 5.0) -> None:
    """Bring the party that ``channel`` holds (see :func:`hold`) back into the call."""
    check_channel(channel)
    held = await getvar(ami, channel, "CTI_HOLD_HELD")
    keeper = await getvar(ami, channel, "CTI_HOLD_KEEPER")
    if not held:
        raise AgentActionError(f"unhold: {channel} holds no call")
    check_channel(held, "held channel")
    holder = await _channel_state(ami, channel)
    await send(
        ami,
        "Redirect",
        {"Channel": held, "Context": HOLD_CONTEXT, "Exten": "resume", "Priority": "1"},
        f"unhold {held}",
    )

    async def _back() -> bool:
        return (await _channel_state(ami, held)).bridge == holder.bridge

    await _until(_back, timeout, f"unhold: {held} rejoining {channel}")
    await _release_keeper(ami, channel, keeper)


async def _release_keeper(ami: AmiClient, holder: str, keeper: str) -> None:
    with contextlib.suppress(AgentActionError):  # gone already: the call ended
        if keeper:
            await hangup(ami, keeper)
        await _setvars(ami, holder, {"CTI_HOLD_HELD": "", "CTI_HOLD_KEEPER": ""})


def _check_uniqueid(uniqueid: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,150}", uniqueid):
        raise AgentActionError(f"unexpected uniqueid {_show(uniqueid)} from Asterisk")
    return uniqueid


async def click_to_dial(
    ami: AmiClient,
    agent_endpoint: str,
    customer_number: str,
    caller_id: CallerId,
    context: str = CLICK_TO_DIAL_CONTEXT,
    *,
    route: str = OUTBOUND_ROUTE,
    agent_ring_seconds: int = 30,
    customer_ring_seconds: int = 60,
) -> ClickToDialCall:
    """Ring the agent's own phone; once they answer, dial ``customer_number``.

    An Originate to ``agent_endpoint`` (a dial string such as ``PJSIP/1001``) into ``context``
    with the customer's number as the extension; that context (``cti-click-to-dial``) sets the
    caller ID the customer sees and dials ``Local/<number>@<route>``. ``route`` names the
    deployment's context that reaches customers through its trunk (``cti-sim-callee`` in the
    simulation). The agent's phone shows the customer's number while it rings. Returns once
    Asterisk has accepted the Originate; ``OriginateResponse`` tells whether the agent answered.
    """
    check_channel(agent_endpoint, "agent endpoint")
    number = check_number(customer_number, "customer number")
    shown = caller_id_header(caller_id)
    _check_name(context, "context")
    _check_name(route, "route context")
    _check_seconds(agent_ring_seconds, "agent ring time", 5, 300)
    _check_seconds(customer_ring_seconds, "customer ring time", 5, 300)
    uniqueid = f"cti-c2d-{uuid.uuid4().hex[:16]}"
    fields: dict[str, ActionValue] = {
        "Channel": agent_endpoint,
        "Context": context,
        "Exten": number,
        "Priority": "1",
        "CallerID": f'"{number}" <{number}>',
        "Timeout": str(agent_ring_seconds * 1000),
        "Async": "true",
        "ChannelId": uniqueid,
        "Variable": originate_variables(
            {
                "CTI_C2D_CALLERID": shown,
                "CTI_C2D_ROUTE": route,
                "CTI_C2D_TIMEOUT": str(customer_ring_seconds),
            }
        ),
    }
    if agent_endpoint.startswith("Local/"):
        fields["OtherChannelId"] = f"{uniqueid}-2"
    await send(ami, "Originate", fields, f"click-to-dial {number} for {agent_endpoint}")
    return ClickToDialCall(uniqueid=uniqueid, agent_endpoint=agent_endpoint, customer_number=number)


# ---- supervision ------------------------------------------------------------------------------

SPY_OPTIONS = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}


async def spy(
    ami: AmiClient, supervisor_phone: str, channel: str, mode: str, *, ring_seconds: int = 30
) -> str:
    """Ring ``supervisor_phone``; once answered it listens to, whispers to (the agent hears), or
    barges into (both hear) the call of ``channel`` (ChanSpy). Returns the Originate's uniqueid.

    ``channel`` is the agent's exact channel name, passed as ChanSpy's prefix: checked as a
    channel, it holds no comma, so it cannot add options; ``E`` ends the spy when it hangs up.
    """
    check_channel(supervisor_phone, "supervisor phone")
    check_channel(channel)
    options = SPY_OPTIONS.get(mode)
    if options is None:
        raise AgentActionError(f"spy mode {_show(mode)} must be one of {', '.join(SPY_OPTIONS)}")
    _check_seconds(ring_seconds, "ring time", 5, 300)
    uniqueid = f"cti-spy-{uuid.uuid4().hex[:16]}"
    fields: dict[str, ActionValue] = {
        "Channel": supervisor_phone,
        "Application": "ChanSpy",
        "Data": f"{channel},{options}",
        "Timeout": str(ring_seconds * 1000),
        "Async": "true",
        "ChannelId": uniqueid,
    }
    if supervisor_phone.startswith("Local/"):
        fields["OtherChannelId"] = f"{uniqueid}-2"
    await send(ami, "Originate", fields, f"{mode} to {channel} from {supervisor_phone}")
    return uniqueid
