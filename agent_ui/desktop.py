"""The agent desktop, following the calls: the screen pop, the call in progress, hand-overs,
and the wrap-up's form.

An agent's phone is the queue member ``agent_interface`` with their extension; tracker agents and
calls find their user by the trailing digits of the member name. When the agent's own leg leaves
an answered call (they hung up, transferred it, or the call ended), the desk asks the agent
control (:class:`~cti_server.control.AgentControl`) for a wrap-up: it pauses the agent with the
reason ``wrap-up`` so that no call rings during the wrap-up, keeps its deadline and says so on
the bus (``WrapUpStarted``, ``WrapUpEnded``). The wrap-up (disposition, notes, an optional
follow-up task) is written to the CRM (:mod:`agent_ui.wrapup`) and the agent is available again;
when the deadline passes first (a closed tab, say) what is known is stored with the default
disposition.

A call transferred from the desktop to another agent's extension pops on that agent's desk as
their phone rings. Every hand-over the tracker reports (``CallTransferred``: a desktop or phone
transfer, a pickup, a forward, an AMI ``Redirect``) pops on the desk of the party who has the
customer now, with the hand-over panel (:mod:`agent_ui.handover`: who handed the customer over,
how, the desktop's note, what was said so far); the desk of the party left behind is told whom
the customer went to and its part of the call ends (wrap-up if it had answered). The router's
``CallRouted`` decision follows the pop of the agent it chose as soon as it is published.

What an agent asks over the socket is :mod:`agent_ui.desk_commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, UiDeps
from agent_ui.handover import Note, Notes, SaidSoFar, how, panel, party_label, user_name
from agent_ui.pop import PopService, Record
from agent_ui.wrapup import DEFAULT_DISPOSITION, WrapUpForm, store_wrap_up
from agent_ui.ws import Connection, Hub, UiError
from crm_core.access import Serving, least
from crm_core.errors import CrmError
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from cti_server.bus import Bus
from cti_server.control import WRAP_UP_REASON, AgentStatus
from cti_server.events import (
    AgentRinging,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallRouted,
    CallTransferred,
    CustomerIdentified,
    DomainEvent,
    IvrFinished,
    TransferNoted,
    WrapUpEnded,
    WrapUpStarted,
    extension_of,
)

log = logging.getLogger(__name__)

ON_A_CALL = (AgentStatus.ON_CALL, AgentStatus.RINGING)
MAX_ROUTED = 1000  # router decisions kept for pops not yet delivered
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "coaching")


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


class Desks:
    """Every desk, fed by domain events (its commands: :mod:`agent_ui.desk_commands`)."""

    TRACKED = (
        CustomerIdentified,
        IvrFinished,
        AgentRinging,
        CallAnswered,
        CallEnded,
        AgentStateChanged,
        CallRouted,
        CallTransferred,
        TransferNoted,
        WrapUpStarted,
        WrapUpEnded,
        *SaidSoFar.TRACKED,
    )

    def __init__(self, deps: UiDeps, hub: Hub, pops: PopService) -> None:
        self.deps = deps
        self.control = deps.control
        self.hub = hub
        self.pops = pops
        self.desks: dict[str, Desk] = {}
        self.said = SaidSoFar(deps.redaction)
        self.notes = Notes()
        self._routed: dict[tuple[str, str], Record] = {}  # the router's word, by call
        self._tasks: set[asyncio.Task[None]] = set()
        hub.greet("desk", self.greeting)

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
        if isinstance(event, CustomerIdentified | IvrFinished):
            self._caller_news(event)
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
        elif isinstance(event, WrapUpStarted | WrapUpEnded):
            self._wrapup_news(event)

    def _caller_news(self, event: CustomerIdentified | IvrFinished) -> None:
        """What the pop will show of the caller, gathered as the call arrives."""
        if isinstance(event, IvrFinished):
            self.pops.ivr_finished(event)
        else:  # nobody signed in: nobody to pop yet, the record is read if the call rings
            self.pops.identified(event, read_now=bool(self.hub.connections))

    def _agent_changed(self, event: AgentStateChanged) -> None:
        extension = extension_of(event.agent)
        if extension and extension in self.desks:  # a closed tab's call goes on here
            self._agent_state(self.desks[extension], event)
        if extension and self.hub.desks_signed_in(extension):
            self._spawn(self._send(extension, self.state_message(event.state, event.reason)))

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
        desk.agent_id = self.user_at(extension)
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
            self.control.cancel_wrap_up(target, key)
        desk.offered = desk.call = key
        desk.agent_id = self.user_at(target)
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
        for desk in self.desks.values():
            if key not in (desk.offered, desk.call):
                continue
            answered_here = desk.call == key or (
                event.outcome == "answered"
                and (desk.extension == extension or self.control.took_part(desk.extension, key))
            )
            if answered_here:
                self._begin_wrapup(desk, key, event.at)
            elif desk.wrapup is None:
                desk.pop = desk.offered = None
                self._spawn(self._send(desk.extension, {"type": "pop_cleared", **_ids(event)}))

    def _agent_state(self, desk: Desk, event: AgentStateChanged) -> None:
        """A transfer's target answering, or the agent's own leg leaving a call still going on
        (a transfer: app_queue completes the agent's part), which ends their part of it."""
        if event.state == AgentStatus.ON_CALL and desk.call is None and desk.offered is not None:
            if desk.pop is not None and desk.pop["call"].get("transferred_by"):
                self._connected(desk, desk.offered)
            return
        if event.state in ON_A_CALL or desk.call is None:
            return
        if event.linkedid and self.control.in_call(desk.extension, desk.call):
            return  # a device state while the phone is still in the call (app_queue's own
            # completion, at a hang-up or a transfer, clears the agent's linkedid)
        self._begin_wrapup(desk, desk.call, event.at)

    # -- wrap-up ------------------------------------------------------------------------------

    def _begin_wrapup(self, desk: Desk, key: tuple[str, str], at: datetime) -> None:
        """The agent's part of the call ``key`` is over: the control pauses them for wrap-up,
        with a deadline; an earlier wrap-up still open is replaced."""
        if desk.wrapup is not None and desk.wrapup["linkedid"] == key[1]:
            return
        desk.call = desk.offered = None
        customer = (desk.pop or {}).get("customer")
        desk.wrapup = {
            "type": "wrapup",
            "node": key[0],
            "linkedid": key[1],
            "customer_id": customer["id"] if customer else None,
            "seconds": self.control.wrap_up_seconds,
            "started": at.isoformat(),
        }
        desk.wrapup_agent = self.user_at(desk.extension) or desk.agent_id
        self.control.start_wrap_up(desk.extension, key, at)

    def _pending(self, event: WrapUpStarted | WrapUpEnded) -> tuple[Desk, Record] | None:
        """The desk's wrap-up the event is about, if this server's desk still has it open."""
        desk = self.desks.get(event.extension)
        pending = desk.wrapup if desk is not None else None
        if desk is None or pending is None:
            return None
        if (pending["node"], pending["linkedid"]) != (event.node, event.linkedid):
            return None
        return desk, pending

    def _wrapup_news(self, event: WrapUpStarted | WrapUpEnded) -> None:
        """The control paused the agent (the form shows with its time left) or the deadline
        passed first (what is known is stored)."""
        found = self._pending(event)
        if found is None:
            return
        if isinstance(event, WrapUpStarted):
            self._spawn(self.hub.to_extension(event.extension, self._wrapup_message(found[0])))
        elif event.timed_out:
            self._spawn(self._expired(*found))

    async def _expired(self, desk: Desk, pending: Record) -> None:
        """At the deadline, a wrap-up nobody sent is stored with the default disposition (and
        the pop's customer); the control has made the agent available again."""
        dispositions = self.deps.settings.dispositions
        default = DEFAULT_DISPOSITION if DEFAULT_DISPOSITION in dispositions else dispositions[-1]
        try:
            await self.store(
                desk, pending, WrapUpForm(disposition=default), agent_id=desk.wrapup_agent
            )
        except (UiError, CrmError, OSError) as exc:
            log.warning("wrap-up of %s not stored at its deadline: %s", pending["linkedid"], exc)
            desk.wrapup = desk.pop = None
        await self.hub.to_extension(
            desk.extension,
            {"type": "wrapped", "linkedid": pending["linkedid"], "timed_out": True},
        )

    async def store(
        self, desk: Desk, pending: Record, form: WrapUpForm, *, agent_id: int | None
    ) -> None:
        """Write the wrap-up ``pending`` of ``desk`` to the CRM, once: the agent's form and the
        deadline may both come; whichever claims it first stores it, the other finds it gone."""
        data = form.interaction(pending, agent_id)
        if desk.wrapup is not pending:
            raise UiError("no wrap-up is pending for this call")
        desk.wrapup = None  # claimed
        try:
            await store_wrap_up(self.deps.db, data, form, agent_id)
        except BaseException:
            if desk.wrapup is None:
                desk.wrapup = pending  # not stored: still pending
            raise
        desk.pop = None

    def user_at(self, extension: str) -> int | None:
        for connection in self.hub.connections:
            if connection.view == "desk" and connection.session.extension == extension:
                return connection.session.user_id
        return None

    def _wrapup_message(self, desk: Desk) -> Record:
        """The pending wrap-up with the seconds left by the server's clock, which the browser's
        countdown follows (its own clock may differ)."""
        assert desk.wrapup is not None
        left = self.control.wrap_up_left(desk.extension)
        seconds = desk.wrapup["seconds"] if left is None else left
        return {**desk.wrapup, "left": max(0, round(seconds))}

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

    # -- the socket's greeting ----------------------------------------------------------------

    @staticmethod
    def state_message(state: str, reason: str) -> dict[str, Any]:
        shown = "wrap_up" if state == AgentStatus.PAUSED and reason == WRAP_UP_REASON else state
        return {"type": "state", "state": shown, "reason": reason}

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
        agent = self.control.agent_of(session.extension)
        state = agent.state if agent is not None else AgentStatus.LOGGED_OUT
        messages.append(self.state_message(str(state), agent.reason if agent else ""))
        desk = self.desk(session.extension)
        if desk.pop is not None:
            messages.append(desk.pop)
        if desk.wrapup is not None:
            messages.append(self._wrapup_message(desk))
        return messages

    def _noted(self, event: TransferNoted) -> None:
        key = (event.node, event.linkedid)
        if self.notes.peek(key) is None:  # another server's desk wrote it
            self.notes.keep(key, Note(event.note, event.by_extension, event.by_name))


def _ids(event: CallAnswered | CallEnded) -> dict[str, str]:
    return {"node": event.node, "linkedid": event.linkedid}


DESKS = web.AppKey("ui_desks", Desks)


@pages.route("GET", "/desktop", least("desk.use"), name="desktop")
async def desktop_page(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    return render(
        request,
        "desktop.html",
        dispositions=deps.settings.dispositions,
        pause_reasons=PAUSE_REASONS,
        transfer_queues=deps.control.transfer_queues,
        extension=request[UI_SESSION].extension,
    )
