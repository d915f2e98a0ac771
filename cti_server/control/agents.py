"""What a desk and a supervisor may do to phones, calls and queues: :class:`AgentControl`.

An agent is named by their extension, a supervised agent by its node and queue member
interface, a call by ``(node, linkedid)``. Every method raises :class:`ControlError` when the
request is refused or the phone system does not carry it out.

Wrap-up belongs to the control: when an agent's part of a call is over the desk asks for it
(:meth:`AgentControl.start_wrap_up`); the control pauses the agent with the reason
:data:`WRAP_UP_REASON`, publishes ``WrapUpStarted``, and keeps the one deadline. The desk ends
it when the agent sends the form (:meth:`AgentControl.end_wrap_up`); when the deadline passes
first the control makes the agent available and publishes ``WrapUpEnded`` with
``timed_out=True``, so that the desk stores what it knows.
"""

from __future__ import annotations

from typing import Protocol

from cti_server.control.live import AgentView
from cti_server.events import CallKey

WRAP_UP_REASON = "wrap-up"  # the pause reason of a desk's wrap-up (queue_log and wallboard)


class AgentControl(Protocol):
    @property
    def transfer_queues(self) -> tuple[str, ...]: ...  # the queues a call may go to

    @property
    def wrap_up_seconds(self) -> int: ...

    def agent_of(self, extension: str) -> AgentView | None:
        """The queue member of ``extension``'s phone on the desks' node, if known."""
        ...

    # -- the agent's own state --

    async def available(self, extension: str) -> None:
        """Join every queue of the agent (again: fine), then unpause."""
        ...

    async def pause(self, extension: str, reason: str) -> None: ...

    async def log_out(self, extension: str) -> None:
        """Leave every queue the agent serves."""
        ...

    # -- the call in progress (``call`` None: the desk has none) --

    async def hang_up(self, extension: str, call: CallKey | None) -> None: ...

    async def hold(self, extension: str, call: CallKey | None) -> None: ...

    async def unhold(self, extension: str, call: CallKey | None) -> None: ...

    async def blind_transfer(self, extension: str, call: CallKey | None, target: str) -> None: ...

    async def transfer_to_queue(self, extension: str, call: CallKey | None, queue: str) -> None:
        """Into one of :attr:`transfer_queues`; any other queue is refused before any look-up."""
        ...

    async def click_to_dial(self, extension: str, number: str) -> None:
        """Ring the agent's phone, then ``number``."""
        ...

    def in_call(self, extension: str, call: CallKey) -> bool:
        """Whether ``extension``'s phone still has a live leg in the live ``call``."""
        ...

    def took_part(self, extension: str, call: CallKey) -> bool:
        """Whether ``extension``'s phone answered a leg of the ended ``call`` (a transfer's
        target)."""
        ...

    # -- wrap-up --

    def start_wrap_up(self, extension: str, call: CallKey) -> None:
        """The agent's part of ``call`` is over: paused for wrap-up, with a deadline (an
        earlier wrap-up of the agent is replaced)."""
        ...

    async def end_wrap_up(self, extension: str, call: CallKey) -> None:
        """The agent sent the wrap-up: available again."""
        ...

    def cancel_wrap_up(self, extension: str, call: CallKey) -> None:
        """The customer came back to the agent: no deadline; the wrap-up follows the call's
        end (a new :meth:`start_wrap_up`). The agent stays as they are."""
        ...

    def wrap_up_left(self, extension: str) -> float | None:
        """Seconds left of the agent's wrap-up by the server's clock; None without one."""
        ...

    # -- supervision (a queue member by node and interface) --

    async def spy(self, node: str, interface: str, supervisor_extension: str, mode: str) -> None:
        """Ring the supervisor's phone to listen, whisper or barge into the agent's call."""
        ...

    async def force_pause(self, node: str, interface: str, reason: str) -> None: ...

    async def force_logout(self, node: str, interface: str) -> None: ...

    async def change_caller_priority(self, call: CallKey, priority: int) -> str:
        """app_queue's priority of a call waiting in a queue; returns the queue."""
        ...
