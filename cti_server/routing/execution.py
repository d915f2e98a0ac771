"""Carrying out routing decisions on Asterisk: the AMI actions the router sends.

Why this design (see also ``[cti-routed]`` in ``dialplans/extensions.conf.j2``):

- **Calls wait in their queue, agents each have a queue of their own.** A waiting caller sits in
  app_queue (music on hold, position, queue_log) in a queue without members, so app_queue never
  picks an agent itself. To give a call to an agent the router sends ``QueueWithdrawCaller`` with
  ``WithdrawInfo: <extension>:<ring seconds>``; the caller's dialplan goes on into
  ``Queue(agent-<extension>,c,,,<ring seconds>)``, where that agent is the only member.
  app_queue therefore still writes every record the tracker and reports rely on (ENTERQUEUE,
  CONNECT, COMPLETE*, RINGNOANSWER; ``AgentCalled``, ``AgentConnect``, ``AgentComplete``), the
  agent's phone shows a normal queue call, and no channel is ever masqueraded.
- **Rejected:** a ``Redirect`` out of ``Queue()`` (queue_log then says the caller ABANDONed, seen
  on Asterisk 22, where a withdraw says WITHDRAW and the dialplan simply goes on); ``Originate``
  plus ``Bridge`` (no queue records at all: the tracker, the recorder and queue_log would not
  know the call was answered); steering one shared queue with penalties or member pauses
  (app_queue still picks which caller goes to which free member, so two simultaneous
  assignments could cross).
- **Counting callers, not segments:** app_queue sends ``QueueCallerAbandon`` (then
  ``QueueCallerLeave``) whenever a caller leaves a queue other than by being answered, a
  withdraw and each heartbeat check included, and AMI shows nothing else at that moment that
  tells a withdraw from a hang-up. The tracker therefore counts an abandon only when the
  waiting channel then hangs up; a caller who goes on (into ``agent-<extension>``, or back into
  the waiting queue) still waits for the waiting queue, from their first join, and is answered
  there too when the agent answers (see ``cti_server/tracker/model.py``, ``QueueStats``).
- **Ring-no-answer:** the agent's queue gives up after the ring time, the dialplan returns the
  caller to its waiting queue, and the router, seeing the call back, pauses the agent with the
  policy's reason (``QueuePause`` with ``Reason``) and decides again. The caller's wait keeps
  counting from the first queue join (the tracker keeps it), so their priority is kept.
- **Fallback without the router:** the router writes a heartbeat into Asterisk (the global
  ``CTI_ROUTER_UNTIL``, a lease in epoch seconds, 0 once it stops). Waiting callers look at it
  every ``routing.check_seconds`` (their ``Queue()`` times out and they rejoin); once it lapses,
  new and waiting calls go to the fallback queue, where agents are ordinary members and plain
  app_queue serves them. A router that cannot decide stops renewing the lease, too. (The lease
  is in epoch seconds: the CTI and Asterisk hosts' clocks must agree within a few seconds.)
"""

from __future__ import annotations

import math

from panoramisk.message import Message

from cti_server.routing.inputs import personal_queue
from cti_server.telephony import agent_actions
from cti_server.telephony.agent_actions import AgentActionError, check_channel
from cti_server.telephony.ami_actions import ActionValue
from cti_server.telephony.ami_client import AmiClient

HEARTBEAT = "CTI_ROUTER_UNTIL"
ATTRIBUTES = ("skill", "language", "tier", "customer_id", "intent")
"""IVR attributes the router reads back from a channel (``CTI_ATTR_<NAME>``) after a restart."""
WAITING_SINCE = "CTI_WAITING_SINCE"
"""Set by the dialplan when a caller first waits for the router (epoch seconds)."""
ACTION_TIMEOUT = 5.0
MAX_RING_SECONDS = 600


async def _send(ami: AmiClient, action: str, fields: dict[str, ActionValue], what: str) -> Message:
    """Through telephony's one AMI send (its errors are ``AgentActionError``); the Response."""
    return (await agent_actions.send(ami, action, fields, what, timeout=ACTION_TIMEOUT))[0]


def ring_seconds(timeout: float) -> int:
    """The policy's ring time as the whole seconds ``Queue()`` takes."""
    return min(MAX_RING_SECONDS, max(1, math.ceil(timeout)))


async def offer(
    ami: AmiClient, *, waiting_queue: str, caller: str, extension: str, ring: int
) -> None:
    """Take ``caller`` out of ``waiting_queue`` to ring the agent ``extension`` for ``ring`` s."""
    check_channel(caller, "caller channel")
    if not extension.isdigit() or not 2 <= len(extension) <= 10:
        raise AgentActionError(f"extension {extension!r} is not 2-10 digits")
    if not 1 <= ring <= MAX_RING_SECONDS:
        raise AgentActionError(f"ring time must be 1..{MAX_RING_SECONDS} s, not {ring}")
    await _send(
        ami,
        "QueueWithdrawCaller",
        {"Queue": waiting_queue, "Caller": caller, "WithdrawInfo": f"{extension}:{ring}"},
        f"offer {caller} to {extension}",
    )


async def not_ready(ami: AmiClient, interface: str, reason: str) -> None:
    """Pause the agent in every queue they serve, with ``reason`` (queue_log and the UI show it)."""
    await agent_actions.pause(ami, interface, reason)


async def heartbeat(ami: AmiClient, until: int) -> None:
    """Renew the router's lease in Asterisk: waiting calls stay for the router until ``until``
    (epoch seconds); 0 sends them to the fallback queue at their next check."""
    await _send(ami, "Setvar", {"Variable": HEARTBEAT, "Value": str(until)}, "router heartbeat")


async def call_attributes(ami: AmiClient, channel: str) -> tuple[dict[str, str], float | None]:
    """The IVR attributes left on the caller's channel (``CTI_ATTR_*``) and when the caller began
    to wait, for calls that were waiting before this router started (it saw neither their
    ``IvrFinished`` nor, the tracker having been rebuilt, their first queue join)."""
    check_channel(channel)
    found: dict[str, str] = {}
    for name in ATTRIBUTES:
        value = await agent_actions.getvar(
            ami, channel, f"CTI_ATTR_{name.upper()}", timeout=ACTION_TIMEOUT
        )
        if value:
            found[name] = value
    since = await agent_actions.getvar(ami, channel, WAITING_SINCE, timeout=ACTION_TIMEOUT)
    return found, float(since) if since.isdigit() else None


async def sign_in(
    ami: AmiClient,
    *,
    extension: str,
    interface: str,
    member_name: str,
    fallback_queue: str,
    paused: bool = False,
) -> None:
    """Make an agent routable: a member of their own queue, and of the fallback queue so that
    calls still reach them while the router is down."""
    for queue in (personal_queue(extension), fallback_queue):
        await agent_actions.queue_login(ami, queue, interface, member_name, paused=paused)


async def sign_out(ami: AmiClient, *, extension: str, interface: str, fallback_queue: str) -> None:
    for queue in (personal_queue(extension), fallback_queue):
        await agent_actions.queue_logout(ami, queue, interface)
