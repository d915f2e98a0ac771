"""The desk page's reports about its browser phone (:mod:`agent_ui.phone_accounts` says where
it registers).

A desk whose microphone is refused or missing says so (``{"type": "phone", "working": false,
"problem": ...}``): the agent is paused with :data:`NO_MICROPHONE` as the reason, so no call is
offered to someone who cannot speak, and may not go available again until the page reports a
working microphone. They then go available themselves: a state they did not ask for is never
set behind their back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_ui.ws import Connection, Reply, UiError
from crm_core.access import least
from cti_server.events import AgentState

if TYPE_CHECKING:
    from agent_ui.desktop import Desk, Desks

NO_MICROPHONE = "no microphone"
MICROPHONE_PROBLEMS = {  # what the page's phone says (static/phone.js), as the desk shows it
    "refused": "the microphone was refused in this browser",
    "missing": "no microphone was found",
    "busy": "the microphone is in use by another program or does not work",
    "insecure": "the page is not served over https, so the browser gives it no microphone",
    "failed": "the microphone could not be opened",
}


class DeskPhones:
    """The desk page's reports about its phone (``phone`` messages over the desk socket)."""

    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        desks.hub.handle("phone", least("desk.use"), ("desk",), self.report)

    async def report(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = connection.session.extension
        if not extension:
            raise UiError("your user has no extension: ask an administrator to give you one")
        desk = self.desks.desk(extension)
        if message.get("working") is True:
            desk.phone_problem = ""
            return None
        problem = message.get("problem")
        if message.get("working") is not False or problem not in MICROPHONE_PROBLEMS:
            raise UiError(
                "phone reports say working: true, or working: false with a problem of "
                + ", ".join(MICROPHONE_PROBLEMS)
            )
        desk.phone_problem = MICROPHONE_PROBLEMS[str(problem)]
        control = self.desks.control
        agent = control.agent_of(extension)
        if agent is None or not agent.queues:
            return None  # in no queue: offered nothing already
        # a phone without a microphone also stops registering (Asterisk then sees the device
        # unavailable); the pause says why and outlasts the page
        if agent.state != AgentState.PAUSED or agent.reason != NO_MICROPHONE:
            await control.pause(extension, NO_MICROPHONE)
        return None


def refuse_while_phone_broken(desk: Desk) -> None:
    """Going available is refused, with the reason, while the desk's phone cannot take a call."""
    if desk.phone_problem:
        raise UiError(
            f"Your phone cannot take calls: {desk.phone_problem}. Fix it, then try again."
        )
