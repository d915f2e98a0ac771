"""The agent desktop: state control, the screen pop, call controls and wrap-up.

An agent's phone is the queue member ``agent_interface`` with their extension; tracker agents and
calls find their user by the trailing digits of the member name. When the agent's own leg leaves
an answered call (they hung up, transferred it, or the call ended), the agent is paused with the
reason ``wrap-up`` so that no call rings during the wrap-up; the wrap-up (disposition, notes, an
optional follow-up task) is written to the CRM and the agent is available again. The wrap-up's
deadline is kept here, not in the browser: when it passes (a closed tab, say) what is known is
stored with the default disposition and the agent is made available.

A call transferred from the desktop to another agent's extension pops on that agent's desk as
their phone rings. Every hand-over the tracker reports (``CallTransferred``: a desktop or phone
transfer, a pickup, a forward, an AMI ``Redirect``) pops on the desk of the party who has the
customer now, with the hand-over panel (:mod:`agent_ui.handover`: who handed the customer over,
how, the desktop's note, what was said so far); the desk of the party left behind is told whom
the customer went to and its part of the call ends (wrap-up if it had answered). The router's
``CallRouted`` decision follows the pop of the agent it chose as soon as it is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, UiDeps
from agent_ui.handover import (
    Note,
    Notes,
    SaidSoFar,
    checked_note,
    how,
    panel,
    party_label,
    user_name,
)
from agent_ui.pop import PopService, Record
from agent_ui.ws import Connection, Hub, Reply, UiError
from crm_core.access import Serving, least
from crm_core.errors import CrmError
from crm_core.followups import create_follow_up
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from crm_core.text_rules import unsafe_character
from cti_server.bus import Bus
from cti_server.events import (
    AgentRinging,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallRouted,
    CallTransferred,
    DomainEvent,
    IvrFinished,
    TransferNoted,
)
from cti_server.routing.inputs import personal_queue
from cti_server.telephony import agent_actions as actions
from cti_server.tracker.model import Agent, Call

log = logging.getLogger(__name__)

WRAPUP_REASON = "wrap-up"
DEFAULT_DISPOSITION = "no_action"  # stored when the wrap-up's time runs out
WRAPUP_GRACE = 3.0  # seconds after the deadline for an open desktop's own form to arrive
ON_A_CALL = ("on_call", "ringing")
MAX_ROUTED = 1000  # router decisions kept for pops not yet delivered
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
    agent_id: int | None = None  # the user signed in at this desk when a call last popped
    wrapup_agent: int | None = None  # ... and when the wrap-up began
    wrapup_ends: float = 0.0  # the event loop's clock


class Desks:
    """Every desk, fed by domain events; carries out what the agents ask over their socket."""

    TRACKED = (
        CallArrived,
        IvrFinished,
        AgentRinging,
        CallAnswered,
        CallEnded,
        AgentStateChanged,
        CallRouted,
        CallTransferred,
        TransferNoted,
        *SaidSoFar.TRACKED,
    )

    def __init__(self, deps: UiDeps, hub: Hub, pops: PopService) -> None:
        self.deps = deps
        self.hub = hub
        self.pops = pops
        self.desks: dict[str, Desk] = {}
        # the live transcript is redacted for the regions the transcription service redacts for
        self.said = SaidSoFar(tuple(dict.fromkeys((deps.region, "US", "GB"))))
        self.notes = Notes()
        self._routed: dict[tuple[str, str], Record] = {}  # the router's word, by call
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
            hub.handle(kind, least("desk.use"), ("desk",), handler)

    def desk(self, extension: str) -> Desk:
        return self.desks.setdefault(extension, Desk(extension))

    def serving(self, extension: str | None) -> Serving:
        """Whom the desk of ``extension`` serves now: the customers its pop shows (the caller,
        or each match of a shared number, until the agent chooses), the wrap-up's customer, and
        the calls ringing there, answered there or being wrapped up (``node:linkedid``). The
        role matrix (:mod:`crm_core.access`) lets an agent read and change these only."""
        desk = self.desks.get(extension) if extension else None
        if desk is None:
            return Serving()
        customers: set[int] = set()
        calls = {f"{key[0]}:{key[1]}" for key in (desk.offered, desk.call) if key is not None}
        if desk.pop is not None:
            shown = desk.pop.get("customer")
            customers |= {shown["id"]} if shown else {m["id"] for m in desk.pop.get("matches", [])}
            calls.add(f"{desk.pop['call']['node']}:{desk.pop['call']['linkedid']}")
        if desk.wrapup is not None:
            if desk.wrapup.get("customer_id") is not None:
                customers.add(desk.wrapup["customer_id"])
            calls.add(f"{desk.wrapup['node']}:{desk.wrapup['linkedid']}")
        return Serving(frozenset(customers), frozenset(calls))

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
            self.said.apply(event)
            self.notes.forget((event.node, event.linkedid))
        elif isinstance(event, CallTransferred):
            self._handed_over(event)
        elif isinstance(event, TransferNoted):
            self._noted(event)
        elif isinstance(event, SaidSoFar.TRACKED):
            self.said.apply(event)
        elif isinstance(event, AgentStateChanged):
            self._agent_changed(event)
        elif isinstance(event, CallRouted):
            self._route_decided(event)

    def _agent_changed(self, event: AgentStateChanged) -> None:
        extension = extension_of(event.agent)
        if extension and extension in self.desks:  # a closed tab's call goes on here
            self._agent_state(self.desks[extension], event)
        if extension and self.hub.desks_signed_in(extension):
            self._spawn(self._send(extension, self._state_message(event.state, event.reason)))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        """A desk's work that failed is logged with its traceback, not lost with the task."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("desk work failed", exc_info=task.exception())

    async def _send(self, extension: str, message: dict[str, Any]) -> None:
        await self.hub.to_extension(extension, message)

    async def _deliver_pop(self, extension: str, event: AgentRinging) -> None:
        pop = await self.pops.pop_for(event)
        desk = self.desk(extension)
        key = (event.node, event.linkedid)
        if desk.offered != key:
            return  # answered elsewhere or over while the record was read
        pop["call"]["state"] = "connected" if desk.call == key else "ringing"
        pop["routing"] = {**pop["routing"], **self._routed.get(key, {})}
        desk.pop = pop
        desk.agent_id = self._user_at(extension)
        if not await self.hub.to_extension(extension, pop):
            return
        routing = await self.pops.routing_of(event.node, event.linkedid)
        if routing and desk.pop is pop:
            await self._add_routing(desk, routing)

    async def _add_routing(self, desk: Desk, routing: Record) -> None:
        """The router's word joins the pop on show, unless the pop already says it."""
        pop = desk.pop
        if pop is None or all(pop["routing"].get(k) == v for k, v in routing.items()):
            return
        pop["routing"] = {**pop["routing"], **routing}
        message = {"type": "pop_routing", "linkedid": pop["call"]["linkedid"], "routing": routing}
        await self.hub.to_extension(desk.extension, message)

    def _route_decided(self, event: CallRouted) -> None:
        """``CallRouted`` reaches the desk the moment the router publishes it; the interaction's
        copy is written later by the recorder, so reading it at ring time can miss it."""
        key = (event.node, event.linkedid)
        self._routed[key] = {"decision": event.decision}
        while len(self._routed) > MAX_ROUTED:
            self._routed.pop(next(iter(self._routed)))
        extension = extension_of(event.agent) or event.agent
        desk = self.desks.get(extension)
        pop = desk.pop if desk is not None and key in (desk.offered, desk.call) else None
        if desk is not None and pop is not None and pop["call"]["linkedid"] == event.linkedid:
            self._spawn(self._add_routing(desk, self._routed[key]))

    def _answered(self, event: CallAnswered) -> None:
        answering = extension_of(event.agent)
        key = (event.node, event.linkedid)
        for desk in self.desks.values():
            if desk.offered != key:
                continue
            if desk.extension == answering:
                self._connected(desk, key)
            else:  # rang here too, answered elsewhere
                desk.pop = desk.offered = None
                self._spawn(self._send(desk.extension, {"type": "pop_cleared", **_ids(event)}))

    def _connected(self, desk: Desk, key: tuple[str, str]) -> None:
        desk.call = key
        if desk.pop is not None:
            desk.pop["call"]["state"] = "connected"
        self._spawn(
            self._send(desk.extension, {"type": "answered", "node": key[0], "linkedid": key[1]})
        )

    # -- hand-overs ---------------------------------------------------------------------------

    def _handed_over(self, event: CallTransferred) -> None:
        """A new party has the customer: the desk it left is told and its part ends; the desk
        of the new party pops with the hand-over. The desks' state changes now, in bus order;
        what needs the CRM (the pop, the names) follows."""
        key = (event.node, event.linkedid)
        target = event.to_extension or extension_of(event.to_agent) or ""
        source = event.from_extension or extension_of(event.from_agent) or ""
        note = self.notes.take(key, source)
        if source and source != target:
            self._left(source, key, event, target)
        if not target or not self.hub.desks_signed_in(target):
            return
        desk = self.desk(target)
        if desk.call is not None and desk.call != key:
            self._begin_wrapup(desk, desk.call, event.at)  # their phone took this one over
        pending = desk.wrapup
        if pending is not None and (pending["node"], pending["linkedid"]) == key:
            desk.wrapup = None  # the customer is back (A to B to A): one wrap-up, at the end
        desk.offered = desk.call = key
        desk.agent_id = self._user_at(target)
        said = panel(
            self.said,
            key,
            kind=event.kind,
            from_name=None,
            from_extension=source,
            from_device=event.from_party,
            note=note,
            at=event.at,
        )
        self._spawn(self._deliver_handover(desk, event, said))

    async def _deliver_handover(self, desk: Desk, event: CallTransferred, said: Record) -> None:
        key = (event.node, event.linkedid)
        name = await self._name_of(said["from"]["extension"])
        said["from"] = {**said["from"], "name": name or ""}
        said["from"]["label"] = party_label(name, said["from"]["extension"], event.from_party)
        shown = desk.pop
        if shown is not None and (shown["call"]["node"], shown["call"]["linkedid"]) == key:
            pop = copy.deepcopy(shown)  # the desktop's ring-time pop: its look-up is done
        else:
            pop = await self.pops.pop_for_call(
                event.node,
                event.linkedid,
                queue=event.queue,
                caller_number=event.caller_number,
                caller_name=event.caller_name,
                at=event.at,
            )
            pop["routing"] = {**pop["routing"], **self._routed.get(key, {})}
        if desk.call != key:
            return  # over, or handed on again, while the record was read
        pop["call"]["state"] = "connected"
        pop["call"]["transferred_by"] = name or said["from"]["label"]
        pop["handover"] = said
        desk.pop = pop
        await self.hub.to_extension(desk.extension, pop)

    def _left(self, source: str, key: tuple[str, str], event: CallTransferred, to: str) -> None:
        """The party ``source`` no longer has the customer: a call it had is wrapped up, a pop
        of a call only ringing there (a pickup) closes."""
        desk = self.desks.get(source)
        if desk is None:
            return
        pending = desk.wrapup
        wrapping = pending is not None and (pending["node"], pending["linkedid"]) == key
        if key not in (desk.offered, desk.call) and not wrapping:
            return
        had_it = desk.call == key or wrapping  # wrapping: app_queue ended their part first
        if had_it:
            self._begin_wrapup(desk, key, event.at)
        else:
            desk.pop = desk.offered = None
        self._spawn(self._tell_left(desk, event, to, closed=not had_it))

    async def _tell_left(self, desk: Desk, event: CallTransferred, to: str, closed: bool) -> None:
        name = await self._name_of(to)
        message = {
            "type": "handed_over",
            "node": event.node,
            "linkedid": event.linkedid,
            "to": party_label(name, to, event.to_party),
            "how": how(event.kind),
            "closed": closed,
        }
        await self.hub.to_extension(desk.extension, message)

    async def _name_of(self, extension: str) -> str | None:
        """The CRM user with ``extension``, if any (a look-up that fails names nobody)."""
        if not extension:
            return None
        try:
            async with self.deps.db() as db:
                return await user_name(db, extension)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("no name for extension %s: %s", extension, exc)
            return None

    def _ended(self, event: CallEnded) -> None:
        self.pops.ended(event.node, event.linkedid)
        self._routed.pop((event.node, event.linkedid), None)
        extension = extension_of(event.agent)
        key = (event.node, event.linkedid)
        ended = self.deps.tracker.ended_call(*key)
        for desk in self.desks.values():
            if key not in (desk.offered, desk.call):
                continue
            answered_here = desk.call == key or (
                event.outcome == "answered"
                and (desk.extension == extension or self._took_part(desk.extension, ended))
            )
            if answered_here:
                self._begin_wrapup(desk, key, event.at)
            elif desk.wrapup is None:
                desk.pop = desk.offered = None
                self._spawn(self._send(desk.extension, {"type": "pop_cleared", **_ids(event)}))

    def _took_part(self, extension: str, call: Call | None) -> bool:
        """Whether the phone of ``extension`` answered a leg of ``call`` (a transfer's target)."""
        prefix = channel_prefix(self.deps.interface_of(extension))
        legs = call.legs.values() if call is not None else ()
        return any(leg.channel.startswith(prefix) and leg.state == "Up" for leg in legs)

    def _agent_state(self, desk: Desk, event: AgentStateChanged) -> None:
        """A transfer's target answering, or the agent's own leg leaving a call still going on
        (a transfer: app_queue completes the agent's part), which ends their part of it."""
        if event.state == "on_call" and desk.call is None and desk.offered is not None:
            if desk.pop is not None and desk.pop["call"].get("transferred_by"):
                self._connected(desk, desk.offered)
            return
        if event.state in ON_A_CALL or desk.call is None:
            return
        call = self.deps.tracker.call(*desk.call)
        if event.linkedid and call is not None and self._legs_of(desk.extension, call):
            return  # a device state while the phone is still in the call (app_queue's own
            # completion, at a hang-up or a transfer, clears the agent's linkedid)
        self._begin_wrapup(desk, desk.call, event.at)

    def _begin_wrapup(self, desk: Desk, key: tuple[str, str], at: datetime) -> None:
        """The agent's part of the call ``key`` is over: paused for wrap-up, with a deadline."""
        if desk.wrapup is not None and desk.wrapup["linkedid"] == key[1]:
            return
        if desk.wrapup is not None:  # an earlier one still open: it is stored as it stands
            self._spawn(self._expire(desk, desk.wrapup, 0.0))
        desk.call = desk.offered = None
        customer = (desk.pop or {}).get("customer")
        seconds = self.deps.settings.wrapup_seconds
        desk.wrapup = pending = {
            "type": "wrapup",
            "node": key[0],
            "linkedid": key[1],
            "customer_id": customer["id"] if customer else None,
            "seconds": seconds,
            "started": at.isoformat(),
        }
        desk.wrapup_agent = self._user_at(desk.extension) or desk.agent_id
        desk.wrapup_ends = asyncio.get_running_loop().time() + seconds
        self._spawn(self._start_wrapup(desk))
        self._spawn(self._expire(desk, pending, seconds + WRAPUP_GRACE))

    def _user_at(self, extension: str) -> int | None:
        for connection in self.hub.connections:
            if connection.view == "desk" and connection.session.extension == extension:
                return connection.session.user_id
        return None

    def _wrapup_message(self, desk: Desk) -> Record:
        """The pending wrap-up with the seconds left by the server's clock, which the browser's
        countdown follows (its own clock may differ)."""
        assert desk.wrapup is not None
        left = desk.wrapup_ends - asyncio.get_running_loop().time()
        return {**desk.wrapup, "left": max(0, round(left))}

    async def _start_wrapup(self, desk: Desk) -> None:
        interface = self.deps.interface_of(desk.extension)
        try:
            await actions.pause(self.deps.ami, interface, WRAPUP_REASON)
        except (actions.AgentActionError, TimeoutError, OSError) as exc:
            log.warning("could not pause %s for wrap-up: %s", interface, exc)
        if desk.wrapup is not None:
            await self.hub.to_extension(desk.extension, self._wrapup_message(desk))

    async def _expire(self, desk: Desk, pending: Record, after: float) -> None:
        """At the deadline, a wrap-up nobody sent is stored with the default disposition (and
        the pop's customer), and the agent is available again."""
        await asyncio.sleep(after)
        if desk.wrapup is not pending:
            return  # sent by the agent, or replaced (and stored) already
        dispositions = self.deps.settings.dispositions
        default = DEFAULT_DISPOSITION if DEFAULT_DISPOSITION in dispositions else dispositions[-1]
        try:
            await self._store(
                desk,
                pending,
                disposition=default,
                notes="",
                agent_id=desk.wrapup_agent,
                due=None,
                follow_up_note="",
            )
        except (UiError, CrmError, OSError) as exc:
            log.warning("wrap-up of %s not stored at its deadline: %s", pending["linkedid"], exc)
            desk.wrapup = desk.pop = None
        if desk.wrapup is None:
            try:
                await self.available(desk.extension)
            except (actions.AgentActionError, TimeoutError, OSError) as exc:
                log.warning("%s not made available after wrap-up: %s", desk.extension, exc)
            await self.hub.to_extension(
                desk.extension,
                {"type": "wrapped", "linkedid": pending["linkedid"], "timed_out": True},
            )

    # -- the socket ---------------------------------------------------------------------------

    def _state_message(self, state: str, reason: str) -> dict[str, Any]:
        shown = "wrap_up" if state == "paused" and reason == WRAPUP_REASON else state
        return {"type": "state", "state": shown, "reason": reason}

    def _agent(self, extension: str) -> Agent | None:
        return self.deps.tracker.agent(self.deps.node, self.deps.interface_of(extension))

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
            messages.append(self._wrapup_message(desk))
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

    def _legs_of(self, extension: str, call: Call) -> list[str]:
        """The live channels of ``extension``'s phone in ``call``, the bridged half first."""
        prefix = channel_prefix(self.deps.interface_of(extension))
        legs = [leg.channel for leg in call.live_legs() if leg.channel.startswith(prefix)]
        legs.sort(key=lambda name: not name.endswith(";1"))  # a Local agent: the bridged half
        return legs

    def _my_channel(self, extension: str) -> str:
        """The agent's own leg of the call in progress."""
        desk = self.desk(extension)
        call = self.deps.tracker.call(*desk.call) if desk.call else None
        if call is None:
            raise UiError("no call in progress")
        legs = self._legs_of(extension, call)
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

    @staticmethod
    def _note(message: dict[str, Any]) -> str:
        try:
            return checked_note(message.get("note"))
        except ValueError as exc:
            raise UiError(str(exc)) from None

    def _noted(self, event: TransferNoted) -> None:
        key = (event.node, event.linkedid)
        if self.notes.peek(key) is None:  # another server's desk wrote it
            self.notes.keep(key, Note(event.note, event.by_extension, event.by_name))

    def _keep_note(self, connection: Connection, key: tuple[str, str] | None, note: str) -> None:
        """The note goes to whoever the tracker says took the customer over from this desk,
        on this server at once and on the others through the bus."""
        extension = connection.session.extension
        if key is not None and note and extension:
            name = connection.session.display_name
            self.notes.keep(key, Note(note, extension, name))
            self.deps.bus.publish(
                TransferNoted(
                    node=key[0], linkedid=key[1], by_extension=extension, by_name=name, note=note
                )
            )

    async def transfer(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = self._extension(connection)
        note = self._note(message)
        channel = self._my_channel(extension)
        desk = self.desk(extension)
        call, pop = desk.call, desk.pop
        target = str(message.get("to", ""))
        await actions.blind_transfer(
            self.deps.ami, channel, target, self.deps.settings.transfer_context
        )
        self._keep_note(connection, call, note)
        if call is not None and pop is not None and target != extension:
            await self._pop_transferred(target, call, pop, connection)
        return {"type": "info", "message": f"transferred to {target}"}

    async def _pop_transferred(
        self, target: str, key: tuple[str, str], pop: Record, by: Connection
    ) -> None:
        """The agent the call was transferred to sees the caller's pop as their phone rings
        (no queue offers it to them, so no ``AgentRinging`` will), with the hand-over panel;
        the tracker's ``CallTransferred`` refreshes it once they have the customer."""
        if not self.hub.desks_signed_in(target):
            return
        desk = self.desk(target)
        if desk.call is not None:
            return  # on another call: the transfer rings a busy phone
        shown = copy.deepcopy(pop)
        shown.pop("handover", None)
        shown["call"]["state"] = "ringing"
        shown["call"]["transferred_by"] = by.session.display_name
        shown["handover"] = panel(
            self.said,
            key,
            kind="blind",
            from_name=by.session.display_name,
            from_extension=by.session.extension or "",
            from_device="",
            note=self.notes.peek(key),
            at=datetime.now(UTC),
        )
        desk.offered, desk.pop = key, shown
        desk.agent_id = self._user_at(target)
        await self.hub.to_extension(target, shown)

    async def transfer_to_queue(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """Blind transfer of the customer into a configured queue, checked before the call is
        looked up: Asterisk would send the customer to a wrong destination and end the call."""
        extension = self._extension(connection)
        queue = message.get("queue")
        queues = self.deps.transfer_queues
        if not isinstance(queue, str) or queue not in queues:
            raise UiError(f"choose a queue to transfer to: {', '.join(queues) or 'none'}")
        note = self._note(message)
        channel = self._my_channel(extension)
        await actions.transfer_to_queue(self.deps.ami, channel, queue, queues)
        self._keep_note(connection, self.desk(extension).call, note)
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
        follow_up_note = str(message.get("follow_up_note", ""))
        unsafe = unsafe_character(follow_up_note)
        if unsafe is not None:
            raise UiError(f"follow-up note: {unsafe} is not allowed")
        customer_id = pending.get("customer_id")
        if due is not None and customer_id is None:
            raise UiError("a follow-up needs a customer: create or choose the customer first")
        try:
            await self._store(
                desk,
                pending,
                disposition=disposition,
                notes=str(message.get("notes", "")),
                agent_id=connection.session.user_id,
                due=due,
                follow_up_note=follow_up_note,
            )
        except CrmError as exc:
            raise UiError(str(exc)) from None
        await self.available(extension)
        return {"type": "wrapped", "linkedid": pending["linkedid"]}

    async def _store(
        self,
        desk: Desk,
        pending: Record,
        *,
        disposition: str,
        notes: str,
        agent_id: int | None,
        due: datetime | None,
        follow_up_note: str,
    ) -> None:
        """Write the wrap-up ``pending`` of ``desk`` to the CRM, once: the agent's form and the
        deadline may both come; whichever claims it first stores it, the other finds it gone."""
        customer_id = pending.get("customer_id")
        try:
            data = InteractionIn(
                node=pending["node"],
                linkedid=pending["linkedid"],
                disposition=disposition,
                notes=notes[:10000],
                agent_id=agent_id,
                customer_id=customer_id,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise UiError(f"wrap-up refused: {where}: {error['msg']}") from None
        if desk.wrapup is not pending:
            raise UiError("no wrap-up is pending for this call")
        desk.wrapup = None  # claimed
        try:
            async with self.deps.db() as db, db.begin():
                row = await record_interaction(db, data)
                if due is not None and customer_id is not None:
                    await create_follow_up(
                        db,
                        customer_id=customer_id,
                        due_at=due,
                        owner_id=agent_id,
                        note=follow_up_note[:2000],
                        interaction_id=row.id,
                    )
        except BaseException:
            if desk.wrapup is None:
                desk.wrapup = pending  # not stored: still pending
            raise
        desk.pop = None


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


@pages.route("GET", "/desktop", least("desk.use"), name="desktop")
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
