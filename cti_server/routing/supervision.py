"""The router's supervisor controls as the agent UI's
:class:`~cti_server.control.SupervisorRouting`: the router's refusals become the UI's one
error."""

from __future__ import annotations

from typing import Any, Protocol

from cti_server.control import ControlError
from cti_server.routing.inputs import PERSONAL_PREFIX, personal_queue
from cti_server.routing.router import RoutingError


class _Steerable(Protocol):
    def snapshot(self) -> dict[str, Any]: ...

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]: ...

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]: ...


class RouterSupervision:
    """``router`` (:class:`~cti_server.routing.router.Router`) for the wallboard."""

    def __init__(self, router: _Steerable) -> None:
        self.router = router

    def snapshot(self) -> dict[str, Any]:
        return self.router.snapshot()

    def move(self, node: str, linkedid: str, agent: str, *, by: str = "") -> dict[str, Any]:
        try:
            return self.router.move(node, linkedid, agent, by=by)
        except RoutingError as exc:
            raise ControlError(str(exc)) from None

    def change_priority(self, node: str, linkedid: str, adjust: float) -> dict[str, Any]:
        try:
            return self.router.change_priority(node, linkedid, adjust)
        except RoutingError as exc:
            raise ControlError(str(exc)) from None

    @staticmethod
    def agent_of_queue(queue: str) -> str | None:
        """The extension whose own queue ``queue`` is (the router rings an agent through it),
        None for a service queue customers call."""
        extension = queue.removeprefix(PERSONAL_PREFIX)
        if extension != queue and extension.isdigit() and personal_queue(extension) == queue:
            return extension
        return None
