"""The desks' and supervisors' :class:`~cti_server.control.AgentControl`, over AMI.

It knows what the UI should not: which queue member and channel an extension's phone is (the
``agent_interface`` and ``member_name`` settings), which AMI link serves a node, which leg of a
call is the agent's, and how a refused action reads (``AgentActionError``, a link that is down,
a reply that never came all become :class:`~cti_server.control.ControlError`).

It owns the desk's wrap-up: one deadline per agent, kept here and not in the browser (a closed
tab must not leave an agent paused). Beside it the tracker keeps app_queue's own wrap-up
(``wrapuptime`` in queues.conf: the agent is not offered a queue call for that long, and
Asterisk says nothing when it ends); the desk's wrap-up is a pause with the reason
:data:`~cti_server.control.WRAP_UP_REASON`, which the tracker sees as any pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from cti_server.config import UiSettings
from cti_server.control import (
    WRAP_UP_REASON,
    AgentView,
    CallView,
    ControlError,
    LiveView,
)
from cti_server.events import CallKey, CallState, DomainEvent, WrapUpEnded, WrapUpStarted
from cti_server.telephony import agent_actions as actions
from cti_server.telephony.ami_client import AmiClient, AmiError

log = logging.getLogger(__name__)

WRAPUP_GRACE = 3.0  # seconds after the deadline for an open desktop's own form to arrive
WAITING = (CallState.QUEUED, CallState.OFFERED)  # in a queue (an offer may still ring out)


def channel_prefix(interface: str) -> str:
    """``Local/1001@ctx/n`` → ``Local/1001@ctx-``; ``PJSIP/1001`` → ``PJSIP/1001-``."""
    return interface.removesuffix("/n") + "-"


def _legs_of(interface: str, call: CallView) -> list[str]:
    """The live channels of the phone ``interface`` in ``call``, the bridged half first."""
    prefix = channel_prefix(interface)
    legs = [leg.channel for leg in call.live_legs() if leg.channel.startswith(prefix)]
    legs.sort(key=lambda name: not name.endswith(";1"))  # a Local agent: the bridged half
    return legs


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Telephony's errors as the UI's one error."""
    try:
        yield
    except actions.AgentActionError as exc:
        raise ControlError(str(exc)) from exc
    except (AmiError, TimeoutError, OSError) as exc:
        raise ControlError(f"the phone system did not answer: {exc}", unanswered=True) from exc


@dataclass
class _WrapUp:
    call: CallKey
    ends: float  # the event loop's clock
    task: asyncio.Task[None] | None = None


class AmiAgentControl:
    """Every desk's phone on ``node``; supervision of any node's queue members."""

    def __init__(
        self,
        settings: UiSettings,
        *,
        node: str,
        links: Mapping[str, AmiClient],
        live: LiveView,
        publish: Callable[[DomainEvent], None],
        queues: tuple[str, ...],
        transfer_queues: tuple[str, ...] = (),
        own_queue: Callable[[str], str] | None = None,
    ) -> None:
        """``queues``: what an agent joins going available; ``own_queue`` (routing on): the
        agent's own queue, joined first."""
        self.settings = settings
        self.node = node
        self.links = links
        self.live = live
        self.publish = publish
        self.queues = queues
        self._transfer_queues = transfer_queues
        self.own_queue = own_queue
        self._wrapups: dict[str, _WrapUp] = {}  # by extension

    @property
    def transfer_queues(self) -> tuple[str, ...]:
        return self._transfer_queues

    @property
    def wrap_up_seconds(self) -> int:
        return self.settings.wrapup_seconds

    def _link(self, node: str) -> AmiClient:
        link = self.links.get(node)
        if link is None:
            raise ControlError(f"no link to {node}")
        return link

    def _interface(self, extension: str) -> str:
        return self.settings.agent_interface.format(extension=extension)

    def agent_of(self, extension: str) -> AgentView | None:
        return self.live.agent(self.node, self._interface(extension))

    # -- the agent's own state ------------------------------------------------------------------

    async def available(self, extension: str) -> None:
        """Join every queue (Asterisk refuses a second join: fine), then unpause.

        Asterisk is asked rather than the tracker: its view of membership may lag a change made
        elsewhere (a supervisor, another server, a restart)."""
        ami, interface = self._link(self.node), self._interface(extension)
        own = (self.own_queue(extension),) if self.own_queue is not None else ()
        member = self.settings.member_name.format(extension=extension)
        async with _translated():
            for queue in (*own, *self.queues):
                try:
                    await actions.queue_login(ami, queue, interface, member)
                except actions.AgentActionError as exc:
                    if "already" not in str(exc).lower():
                        raise
            await actions.unpause(ami, interface)

    async def pause(self, extension: str, reason: str) -> None:
        async with _translated():
            await actions.pause(self._link(self.node), self._interface(extension), reason)

    async def log_out(self, extension: str) -> None:
        agent = self.agent_of(extension)
        if agent is None:
            return
        async with _translated():
            for queue in sorted(agent.queues):
                await actions.queue_logout(self._link(self.node), queue, agent.interface)

    # -- the call in progress -------------------------------------------------------------------

    def _my_channel(self, extension: str, call: CallKey | None) -> str:
        """The agent's own leg of the call in progress."""
        live = self.live.call(*call) if call else None
        if live is None:
            raise ControlError("no call in progress")
        legs = _legs_of(self._interface(extension), live)
        if not legs:
            raise ControlError("your phone is not in this call")
        return legs[0]

    async def hang_up(self, extension: str, call: CallKey | None) -> None:
        channel = self._my_channel(extension, call)
        async with _translated():
            await actions.hangup(self._link(self.node), channel)

    async def hold(self, extension: str, call: CallKey | None) -> None:
        channel = self._my_channel(extension, call)
        async with _translated():
            await actions.hold(self._link(self.node), channel)

    async def unhold(self, extension: str, call: CallKey | None) -> None:
        channel = self._my_channel(extension, call)
        async with _translated():
            await actions.unhold(self._link(self.node), channel)

    async def blind_transfer(self, extension: str, call: CallKey | None, target: str) -> None:
        channel = self._my_channel(extension, call)
        async with _translated():
            await actions.blind_transfer(
                self._link(self.node), channel, target, self.settings.transfer_context
            )

    async def transfer_to_queue(self, extension: str, call: CallKey | None, queue: str) -> None:
        """Checked before the call is looked up: Asterisk would send the customer to a wrong
        destination and end the call."""
        queues = self._transfer_queues
        if queue not in queues:
            raise ControlError(f"choose a queue to transfer to: {', '.join(queues) or 'none'}")
        channel = self._my_channel(extension, call)
        async with _translated():
            await actions.transfer_to_queue(self._link(self.node), channel, queue, queues)

    async def click_to_dial(self, extension: str, number: str) -> None:
        async with _translated():
            await actions.click_to_dial(
                self._link(self.node),
                self._interface(extension),
                number,
                actions.CallerId(number=extension),
                route=self.settings.outbound_route,
            )

    def in_call(self, extension: str, call: CallKey) -> bool:
        live = self.live.call(*call)
        return live is not None and bool(_legs_of(self._interface(extension), live))

    def took_part(self, extension: str, call: CallKey) -> bool:
        ended = self.live.ended_call(*call)
        prefix = channel_prefix(self._interface(extension))
        legs = ended.legs.values() if ended is not None else ()
        return any(leg.channel.startswith(prefix) and leg.state == "Up" for leg in legs)

    # -- wrap-up ----------------------------------------------------------------------------------

    def start_wrap_up(self, extension: str, call: CallKey) -> None:
        earlier = self._wrapups.pop(extension, None)
        if earlier is not None and earlier.task is not None:
            earlier.task.cancel()  # replaced: the new one keeps the agent paused
        loop = asyncio.get_running_loop()
        wrapup = _WrapUp(call, loop.time() + self.settings.wrapup_seconds)
        self._wrapups[extension] = wrapup
        wrapup.task = loop.create_task(self._wrap_up(extension, wrapup), name="wrap-up")

    async def _wrap_up(self, extension: str, wrapup: _WrapUp) -> None:
        """Pause, say so, and at the deadline (with a grace for the form) make the agent
        available again and say that."""
        try:
            await self.pause(extension, WRAP_UP_REASON)
        except ControlError as exc:
            log.warning("could not pause %s for wrap-up: %s", extension, exc)
        node, linkedid = wrapup.call
        seconds = self.settings.wrapup_seconds
        self.publish(
            WrapUpStarted(node=node, linkedid=linkedid, extension=extension, seconds=seconds)
        )
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, wrapup.ends + WRAPUP_GRACE - loop.time()))
        if self._wrapups.get(extension) is not wrapup:
            return
        del self._wrapups[extension]
        await self._ended(extension, wrapup, timed_out=True)

    async def _ended(self, extension: str, wrapup: _WrapUp, *, timed_out: bool) -> None:
        try:
            await self.available(extension)
        except ControlError as exc:
            if not timed_out:
                raise
            log.warning("%s not made available after wrap-up: %s", extension, exc)
        node, linkedid = wrapup.call
        self.publish(
            WrapUpEnded(node=node, linkedid=linkedid, extension=extension, timed_out=timed_out)
        )

    async def end_wrap_up(self, extension: str, call: CallKey) -> None:
        wrapup = self._wrapups.get(extension)
        if wrapup is not None and wrapup.call == call:
            del self._wrapups[extension]
            if wrapup.task is not None:
                wrapup.task.cancel()
        await self._ended(extension, wrapup or _WrapUp(call, 0.0), timed_out=False)

    def cancel_wrap_up(self, extension: str, call: CallKey) -> None:
        """The customer came back to the agent: no deadline; the wrap-up follows the call's
        end (a new :meth:`start_wrap_up`). The agent stays as they are."""
        wrapup = self._wrapups.get(extension)
        if wrapup is not None and wrapup.call == call:
            del self._wrapups[extension]
            if wrapup.task is not None:
                wrapup.task.cancel()

    def wrap_up_left(self, extension: str) -> float | None:
        wrapup = self._wrapups.get(extension)
        if wrapup is None:
            return None
        return wrapup.ends - asyncio.get_running_loop().time()

    async def close(self) -> None:
        """Cancel and await the wrap-ups' timers (at shutdown)."""
        tasks = [w.task for w in self._wrapups.values() if w.task is not None]
        self._wrapups.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- supervision ------------------------------------------------------------------------------

    def _agent(self, node: str, interface: str) -> AgentView:
        agent = self.live.agent(node, interface)
        if agent is None:
            raise ControlError("no such agent")
        return agent

    async def spy(self, node: str, interface: str, supervisor_extension: str, mode: str) -> None:
        agent = self._agent(node, interface)
        call = self.live.call(agent.node, agent.linkedid)
        legs = _legs_of(agent.interface, call) if call else []
        if not legs:
            raise ControlError(f"{agent.name} is not on a call")
        phone = self.settings.supervisor_phone.format(extension=supervisor_extension)
        async with _translated():
            await actions.spy(self._link(agent.node), phone, legs[0], mode)

    async def force_pause(self, node: str, interface: str, reason: str) -> None:
        agent = self._agent(node, interface)
        async with _translated():
            await actions.pause(self._link(agent.node), agent.interface, reason)

    async def force_logout(self, node: str, interface: str) -> None:
        agent = self._agent(node, interface)
        async with _translated():
            for queue in sorted(agent.queues):
                await actions.queue_logout(self._link(agent.node), queue, agent.interface)

    async def change_caller_priority(self, call: CallKey, priority: int) -> str:
        node, linkedid = call
        live = self.live.call(node, linkedid)
        leg = live.legs.get(live.waiting_leg) if live is not None else None
        if live is None or leg is None or live.state not in WAITING or not live.queue:
            raise ControlError(f"no call {linkedid} waits in a queue on {node}")
        link = self._link(node)
        async with _translated():
            await actions.change_caller_priority(link, live.queue, leg.channel, priority)
        return live.queue
