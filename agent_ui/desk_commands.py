"""What an agent asks at their desk, over its socket: their state, the call controls (hang up,
hold, transfer to an agent or a queue, click-to-dial), which customer a shared number is, and
the wrap-up's form. The phone system is reached through the agent control only."""

from __future__ import annotations

from typing import Any

from agent_ui.call_quality import CallQualityReports
from agent_ui.desk_phone import refuse_while_phone_broken
from agent_ui.desktop import Desks
from agent_ui.handover import Note, checked_note
from agent_ui.wrapup import WrapUpForm
from agent_ui.ws import Connection, Reply, UiError
from crm_core.access import least
from crm_core.errors import CrmError
from cti_server.events import AgentState, CallKey, TransferNoted


class DeskCommands:
    """The desk's messages, each checked here before the control is asked."""

    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        self.control = desks.control
        for kind, handler in (
            ("state", self.change_state),
            ("hangup", self.hang_up),
            ("hold", self.hold),
            ("unhold", self.unhold),
            ("transfer", self.transfer),
            ("transfer_queue", self.transfer_to_queue),
            ("dial", self.dial),
            ("wrapup", self.wrap_up),
            ("choose", self.choose),
        ):
            desks.hub.handle(kind, least("desk.use"), ("desk",), handler)
        CallQualityReports(desks)  # the browser phone's measure of each call

    @staticmethod
    def _extension(connection: Connection) -> str:
        extension = connection.session.extension
        if not extension:
            raise UiError("your user has no extension: ask an administrator to give you one")
        return extension

    def _call(self, extension: str) -> CallKey | None:
        return self.desks.desk(extension).call

    async def change_state(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        wanted = message.get("state")
        if wanted == AgentState.AVAILABLE:
            refuse_while_phone_broken(self.desks.desk(extension))
            await self.control.available(extension)
        elif wanted == AgentState.PAUSED:
            await self.control.pause(extension, str(message.get("reason") or "break"))
        elif wanted == AgentState.LOGGED_OUT:
            await self.control.log_out(extension)
        else:
            raise UiError("state must be available, paused or logged_out")
        return None

    async def hang_up(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        await self.control.hang_up(extension, self._call(extension))
        return None

    async def hold(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        await self.control.hold(extension, self._call(extension))
        return {"type": "held", "held": True}

    async def unhold(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        await self.control.unhold(extension, self._call(extension))
        return {"type": "held", "held": False}

    @staticmethod
    def _note(message: dict[str, Any]) -> str:
        try:
            return checked_note(message.get("note"))
        except ValueError as exc:
            raise UiError(str(exc)) from None

    def _keep_note(self, connection: Connection, key: CallKey | None, note: str) -> None:
        """The note goes to whoever the tracker says took the customer over from this desk,
        on this server at once and on the others through the bus."""
        extension = connection.session.extension
        if key is not None and note and extension:
            name = connection.session.display_name
            self.desks.notes.keep(key, Note(note, extension, name))
            self.desks.deps.bus.publish(
                TransferNoted(
                    node=key[0], linkedid=key[1], by_extension=extension, by_name=name, note=note
                )
            )

    async def transfer(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        note = self._note(message)
        desk = self.desks.desk(extension)
        call, pop = desk.call, desk.pop
        target = str(message.get("to", ""))
        await self.control.blind_transfer(extension, call, target)
        self._keep_note(connection, call, note)
        if call is not None and pop is not None and target != extension:
            await self.desks.handovers.pop_transferred(target, call, pop, connection)
        return {"type": "info", "message": f"transferred to {target}"}

    async def transfer_to_queue(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """Blind transfer of the customer into a configured queue, checked before the call is
        looked up: Asterisk would send the customer to a wrong destination and end the call."""
        extension = self._extension(connection)
        queue = message.get("queue")
        queues = self.control.transfer_queues
        if not isinstance(queue, str) or queue not in queues:
            raise UiError(f"choose a queue to transfer to: {', '.join(queues) or 'none'}")
        note = self._note(message)
        call = self._call(extension)
        await self.control.transfer_to_queue(extension, call, queue)
        self._keep_note(connection, call, note)
        return {"type": "info", "message": f"transferred to the queue {queue}"}

    async def dial(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        number = str(message.get("number", "")).replace(" ", "")
        await self.control.click_to_dial(extension, number)
        return {"type": "info", "message": f"your phone rings first, then {number}"}

    async def choose(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """Several customers share the number: the agent says which one is calling."""
        desk = self.desks.desk(self._extension(connection))
        wanted = message.get("customer_id")
        if desk.pop is None or not any(m["id"] == wanted for m in desk.pop.get("matches", [])):
            raise UiError("that customer is not one of the matches of this call")
        assert isinstance(wanted, int)
        await self.desks.link_customer(desk, wanted)
        return desk.pop

    async def wrap_up(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        desk = self.desks.desk(extension)
        pending = desk.wrapup
        if pending is None or message.get("linkedid") != pending["linkedid"]:
            raise UiError("no wrap-up is pending for this call")
        dispositions = self.desks.deps.settings.dispositions
        form = WrapUpForm.of(message, dispositions, pending.get("customer_id"))
        try:
            await self.desks.wrapups.store(desk, pending, form, agent_id=connection.session.user_id)
        except CrmError as exc:
            raise UiError(str(exc)) from None
        await self.control.end_wrap_up(extension, CallKey(pending["node"], pending["linkedid"]))
        return {"type": "wrapped", "linkedid": pending["linkedid"]}
