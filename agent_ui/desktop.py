"""The agent desktop: state control, the screen pop, call controls and wrap-up.

An agent's phone is the queue member ``agent_interface`` with their extension; tracker agents and
calls find their user by the trailing digits of the member name. When an answered call ends,
the agent is paused with the reason ``wrap-up`` so that no call rings during the wrap-up; the
wrap-up (disposition, notes, an optional follow-up task) is written to the CRM and the agent is
available again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, UiDeps
from agent_ui.pop import PopService, Record
from agent_ui.ws import Connection, Hub, Reply, UiError
from crm_core.errors import CrmError
from crm_core.followups import create_follow_up
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from cti_server.bus import Bus
from cti_server.events import (
    AgentRinging,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    DomainEvent,
    IvrFinished,
)
from cti_server.routing.inputs import personal_queue
from cti_server.telephony import agent_actions as actions
from cti_server.tracker.model import Agent

log = logging.getLogger(__name__)

WRAPUP_REASON = "wrap-up"
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "coaching")
_TRAILING_DIGITS = re.compile(r"(\d{2,10})$")


def extension_of(agent: str) -> str | None:
    """``agent-1001`` or ``sim-8001`` (a queue member name) → its extension."""
    match = _TRAILING_DIGITS.search(agent)
    return match.group(1) if match else None


def channel_prefix(interface: str) -> str:
    """``Local/1001@ctx/n`` → ``Local/1001@ctx-``; ``PJSIP/1001`` → ``PJSIP/1001-``."""
    return interface.removesuffix("/n") + "-"


@dataclass
class Desk:
    """What one extension's desktop shows: the pop, the call in progress, a pending wrap-up."""

    extension: str
    pop: Record | None = None
    offered: tuple[str, str] | None = None  # (node, linkedid) of the call that rang here last
    call: tuple[str, str] | None = None  # ... once answered here
    wrapup: Record | None = None


class Desks:
    """Every desk, fed by domain events; carries out what the agents ask over their socket."""

    TRACKED = (CallArrived, IvrFinished, AgentRinging, CallAnswered, CallEnded, AgentStateChanged)

    def __init__(self, deps: UiDeps, hub: Hub, pops: PopService) -> None:
        self.deps = deps
        self.hub = hub
        self.pops = pops
        self.desks: dict[str, Desk] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        hub.greet("desk", self.greeting)
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
            hub.handle(kind, "agent", ("desk",), handler)

    def desk(self, extension: str) -> Desk:
        return self.desks.setdefault(extension, Desk(extension))

    # -- events -------------------------------------------------------------------------------

    async def run(self, bus: Bus) -> None:
        """Follow the calls until cancelled."""
        subscription = bus.subscribe(*self.TRACKED)
        try:
            async for event in subscription:
                self.apply(event)
        finally:
            subscription.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, CallArrived):
            if self.hub.connections:  # nobody signed in: nobody to pop
                self.pops.arrived(event)
        elif isinstance(event, IvrFinished):
            self.pops.ivr_finished(event)
        elif isinstance(event, AgentRinging):
            extension = extension_of(event.agent)
            if extension and self.hub.desks_signed_in(extension):
                self.desk(extension).offered = (event.node, event.linkedid)
                self._spawn(self._deliver_pop(extension, event))
        elif isinstance(event, CallAnswered):
            self._answered(event)
        elif isinstance(event, CallEnded):
            self._ended(event)
        elif isinstance(event, AgentStateChanged):
            extension = extension_of(event.agent)
            if extension and self.hub.desks_signed_in(extension):
                self._spawn(self._send(extension, self._state_message(event.state, event.reason)))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, extension: str, message: dict[str, Any]) -> None:
        await self.hub.to_extension(extension, message)

    async def _deliver_pop(self, extension: str, event: AgentRinging) -> None:
        pop = await self.pops.pop_for(event)
        desk = self.desk(extension)
        key = (event.node, event.linkedid)
        if desk.offered != key:
            return  # answered elsewhere or over while the record was read
        pop["call"]["state"] = "connected" if desk.call == key else "ringing"
        desk.pop = pop
        if not await self.hub.to_extension(extension, pop):
            return
        routing = await self.pops.routing_of(event.node, event.linkedid)
        if routing:
            pop["routing"] = {**pop["routing"], **routing}
            await self.hub.to_extension(
                extension, {"type": "pop_routing", "linkedid": event.linkedid, "routing": routing}
            )

    def _answered(self, event: CallAnswered) -> None:
        answering = extension_of(event.agent)
        key = (event.node, event.linkedid)
        for desk in self.desks.values():
            if desk.offered != key:
                continue
            if desk.extension == answering:
                desk.call = key
                if desk.pop is not None:
                    desk.pop["call"]["state"] = "connected"
                self._spawn(self._send(desk.extension, {"type": "answered", **_ids(event)}))
            else:  # rang here too, answered elsewhere
                desk.pop = desk.offered = None
                self._spawn(self._send(desk.extension, {"type": "pop_cleared", **_ids(event)}))

    def _ended(self, event: CallEnded) -> None:
        self.pops.ended(event.node, event.linkedid)
        extension = extension_of(event.agent)
        key = (event.node, event.linkedid)
        for desk in self.desks.values():
            mine = desk.offered == key
            if desk.extension == extension and event.outcome == "answered" and mine:
                desk.call = desk.offered = None
                customer = (desk.pop or {}).get("customer")
                desk.wrapup = {
                    "type": "wrapup",
                    **_ids(event),
                    "customer_id": customer["id"] if customer else None,
                    "seconds": self.deps.settings.wrapup_seconds,
                    "started": event.at.isoformat(),
                }
                self._spawn(self._start_wrapup(desk))
            elif mine and desk.wrapup is None:
                desk.pop = desk.offered = None
                self._spawn(self._send(desk.extension, {"type": "pop_cleared", **_ids(event)}))

    async def _start_wrapup(self, desk: Desk) -> None:
        interface = self.deps.interface_of(desk.extension)
        try:
            await actions.pause(self.deps.ami, interface, WRAPUP_REASON)
        except (actions.AgentActionError, TimeoutError, OSError) as exc:
            log.warning("could not pause %s for wrap-up: %s", interface, exc)
        if desk.wrapup is not None:
            await self.hub.to_extension(desk.extension, desk.wrapup)

    # -- the socket ---------------------------------------------------------------------------

    def _state_message(self, state: str, reason: str) -> dict[str, Any]:
        shown = "wrap_up" if state == "paused" and reason == WRAPUP_REASON else state
        return {"type": "state", "state": shown, "reason": reason}

    def _agent(self, extension: str) -> Agent | None:
        return self.deps.tracker.agents.get((self.deps.node, self.deps.interface_of(extension)))

    async def greeting(self, connection: Connection) -> list[dict[str, Any]]:
        session = connection.session
        messages: list[dict[str, Any]] = [
            {
                "type": "hello",
                "user": session.display_name,
                "extension": session.extension,
                "dispositions": list(self.deps.settings.dispositions),
            }
        ]
        if session.extension is None:
            return messages
        agent = self._agent(session.extension)
        state = agent.state.value if agent is not None else "logged_out"
        messages.append(self._state_message(state, agent.reason if agent else ""))
        desk = self.desk(session.extension)
        if desk.pop is not None:
            messages.append(desk.pop)
        if desk.wrapup is not None:
            messages.append(desk.wrapup)
        return messages

    @staticmethod
    def _extension(connection: Connection) -> str:
        extension = connection.session.extension
        if not extension:
            raise UiError("your user has no extension: ask an administrator to give you one")
        return extension

    async def change_state(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        wanted = message.get("state")
        if wanted == "available":
            await self.available(extension)
        elif wanted == "paused":
            reason = str(message.get("reason") or "break")
            await actions.pause(self.deps.ami, self.deps.interface_of(extension), reason)
        elif wanted == "logged_out":
            agent = self._agent(extension)
            for queue in sorted(agent.queues) if agent else []:
                await actions.queue_logout(self.deps.ami, queue, self.deps.interface_of(extension))
        else:
            raise UiError("state must be available, paused or logged_out")
        return None

    async def available(self, extension: str) -> None:
        """Join every queue (Asterisk refuses a second join: fine), then unpause.

        Asterisk is asked rather than the tracker: its view of membership may lag a change made
        elsewhere (a supervisor, another server, a restart)."""
        interface = self.deps.interface_of(extension)
        own = (personal_queue(extension),) if self.deps.personal_queues else ()
        for queue in (*own, *self.deps.queues):
            try:
                await actions.queue_login(
                    self.deps.ami, queue, interface, self.deps.member_name_of(extension)
                )
            except actions.AgentActionError as exc:
                if "already" not in str(exc).lower():
                    raise
        await actions.unpause(self.deps.ami, interface)

    def _my_channel(self, extension: str) -> str:
        """The agent's own leg of the call in progress."""
        desk = self.desk(extension)
        call = self.deps.tracker.calls.get(desk.call) if desk.call else None
        if call is None:
            raise UiError("no call in progress")
        prefix = channel_prefix(self.deps.interface_of(extension))
        legs = [leg.channel for leg in call.live_legs() if leg.channel.startswith(prefix)]
        legs.sort(key=lambda name: not name.endswith(";1"))  # a Local agent: the bridged half
        if not legs:
            raise UiError("your phone is not in this call")
        return legs[0]

    async def hang_up(self, connection: Connection, message: dict[str, Any]) -> Reply:
        await actions.hangup(self.deps.ami, self._my_channel(self._extension(connection)))
        return None

    async def hold(self, connection: Connection, message: dict[str, Any]) -> Reply:
        await actions.hold(self.deps.ami, self._my_channel(self._extension(connection)))
        return {"type": "held", "held": True}

    async def unhold(self, connection: Connection, message: dict[str, Any]) -> Reply:
        await actions.unhold(self.deps.ami, self._my_channel(self._extension(connection)))
        return {"type": "held", "held": False}

    async def transfer(self, connection: Connection, message: dict[str, Any]) -> Reply:
        channel = self._my_channel(self._extension(connection))
        target = str(message.get("to", ""))
        await actions.blind_transfer(
            self.deps.ami, channel, target, self.deps.settings.transfer_context
        )
        return {"type": "info", "message": f"transferred to {target}"}

    async def transfer_to_queue(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """Blind transfer of the customer into a configured queue, checked before the call is
        looked up: Asterisk would send the customer to a wrong destination and end the call."""
        extension = self._extension(connection)
        queue = message.get("queue")
        queues = self.deps.transfer_queues
        if not isinstance(queue, str) or queue not in queues:
            raise UiError(f"choose a queue to transfer to: {', '.join(queues) or 'none'}")
        channel = self._my_channel(extension)
        await actions.transfer_to_queue(self.deps.ami, channel, queue, queues)
        return {"type": "info", "message": f"transferred to the queue {queue}"}

    async def dial(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        number = str(message.get("number", "")).replace(" ", "")
        await self.click_to_dial(extension, number)
        return {"type": "info", "message": f"your phone rings first, then {number}"}

    async def click_to_dial(self, extension: str, number: str) -> None:
        await actions.click_to_dial(
            self.deps.ami,
            self.deps.interface_of(extension),
            number,
            actions.CallerId(number=extension),
            route=self.deps.settings.outbound_route,
        )

    async def choose(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """Several customers share the number: the agent says which one is calling."""
        desk = self.desk(self._extension(connection))
        wanted = message.get("customer_id")
        if desk.pop is None or not any(m["id"] == wanted for m in desk.pop.get("matches", [])):
            raise UiError("that customer is not one of the matches of this call")
        assert isinstance(wanted, int)
        await self.link_customer(desk, wanted)
        return desk.pop

    async def link_customer(self, desk: Desk, customer_id: int) -> None:
        """Show ``customer_id`` in the desk's pop and note them on the call's interaction."""
        if desk.pop is None:
            return
        record = await self.pops.record_of(customer_id)
        desk.pop = {**desk.pop, **record, "matches": desk.pop.get("matches", [])}
        if desk.wrapup is not None:
            desk.wrapup["customer_id"] = customer_id
        call = desk.pop["call"]
        async with self.deps.db() as db, db.begin():
            await record_interaction(
                db,
                InteractionIn(
                    node=call["node"], linkedid=call["linkedid"], customer_id=customer_id
                ),
            )

    async def wrap_up(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        desk = self.desk(extension)
        pending = desk.wrapup
        if pending is None or message.get("linkedid") != pending["linkedid"]:
            raise UiError("no wrap-up is pending for this call")
        disposition = str(message.get("disposition", ""))
        if disposition not in self.deps.settings.dispositions:
            raise UiError("choose a disposition")
        due = _when(message.get("follow_up_at"))
        customer_id = pending.get("customer_id")
        if due is not None and customer_id is None:
            raise UiError("a follow-up needs a customer: create or choose the customer first")
        try:
            data = InteractionIn(
                node=pending["node"],
                linkedid=pending["linkedid"],
                disposition=disposition,
                notes=str(message.get("notes", ""))[:10000],
                agent_id=connection.session.user_id,
                customer_id=customer_id,
            )
        except ValidationError as exc:
            raise UiError(f"wrap-up refused: {exc.errors()[0]['msg']}") from None
        try:
            async with self.deps.db() as db, db.begin():
                row = await record_interaction(db, data)
                if due is not None and customer_id is not None:
                    await create_follow_up(
                        db,
                        customer_id=customer_id,
                        due_at=due,
                        owner_id=connection.session.user_id,
                        note=str(message.get("follow_up_note", ""))[:2000],
                        interaction_id=row.id,
                    )
        except CrmError as exc:
            raise UiError(str(exc)) from None
        desk.wrapup = None
        desk.pop = None
        await self.available(extension)
        return {"type": "wrapped", "linkedid": pending["linkedid"]}


def _ids(event: CallAnswered | CallEnded) -> dict[str, str]:
    return {"node": event.node, "linkedid": event.linkedid}


def _when(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(str(value)[:40])
    except ValueError:
        raise UiError("the follow-up time is not a date and time") from None
    if when.tzinfo is None:
        raise UiError("the follow-up time needs a time zone")
    return when


DESKS = web.AppKey("ui_desks", Desks)


@pages.route("GET", "/desktop", "agent", name="desktop")
async def desktop_page(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    return render(
        request,
        "desktop.html",
        dispositions=deps.settings.dispositions,
        pause_reasons=PAUSE_REASONS,
        transfer_queues=deps.transfer_queues,
        extension=request[UI_SESSION].extension,
    )
