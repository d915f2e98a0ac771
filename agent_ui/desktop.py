"""The agent desktop, following the calls: the screen pop, the call in progress, its end.

An agent's phone is the queue member ``agent_interface`` with their extension; tracker agents and
calls find their user by the trailing digits of the member name. A call that rings at a desk pops
there; the router's ``CallRouted`` decision joins the pop as soon as it is published. When the
agent's own leg leaves an answered call (they hung up, transferred it, or the call ended) the
wrap-up begins (:mod:`agent_ui.wrapup`: the agent control pauses the agent and keeps its
deadline). Hand-overs are :mod:`agent_ui.desk_handovers`; what an agent asks over the socket is
:mod:`agent_ui.desk_commands`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, UiDeps
from agent_ui.desk_handovers import HandOvers
from agent_ui.handover import Notes, SaidSoFar
from agent_ui.phone_accounts import PHONE_SERVER
from agent_ui.pop import PopService, Record, ring_text
from agent_ui.wrapup import WrapUps
from agent_ui.ws import Connection, Hub
from crm_core.access import Serving, least
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from cti_server.bus import Bus
from cti_server.control import WRAP_UP_REASON
from cti_server.events import (
    AgentRinging,
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallKey,
    CallRangOut,
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

ON_A_CALL = (AgentState.ON_CALL, AgentState.RINGING)
MAX_CALLS = 20000  # calls whose desks are remembered, the oldest forgotten
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "coaching")


@dataclass
class Desk:
    """What one extension's desktop shows: the pop, the call in progress, a pending wrap-up."""

    extension: str
    pop: Record | None = None
    offered: CallKey | None = None  # CallKey(node, linkedid) of the call that rang here last
    call: CallKey | None = None  # ... once answered here
    wrapup: Record | None = None
    agent_id: int | None = None  # the user signed in at this desk when a call last popped
    wrapup_agent: int | None = None  # ... and when the wrap-up began
    phone_problem: str = ""  # why the desk's browser phone cannot take a call now (its microphone)


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
        CallRangOut,
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
        self._tasks: set[asyncio.Task[None]] = set()
        self._told: list[tuple[str, dict[str, Any]]] = []  # to the desks, once an event is applied
        # the extensions each call rang at or was handed to (some may have moved on since): an
        # answer or a hang-up looks at those desks, not at every desk (1,000 agents)
        self._rang_at: OrderedDict[CallKey, dict[str, None]] = OrderedDict()
        self._handlers: dict[type[DomainEvent], Handler] = {}  # by type, found as they come
        self.wrapups = WrapUps(self)
        self.handovers = HandOvers(self)
        hub.greet("desk", self.greeting)

    def desk(self, extension: str) -> Desk:
        desk = self.desks.get(extension)
        if desk is None:
            desk = self.desks[extension] = Desk(extension)
        return desk

    def serving(self, extension: str | None) -> Serving:
        """Whom the desk of ``extension`` serves now: the customers its pop shows (the caller,
        or each match of a shared number, until the agent chooses), the wrap-up's customer, and
        the calls ringing there, answered there or being wrapped up (``node:linkedid``). The
        role matrix (:mod:`crm_core.access`) lets an agent read and change these only."""
        desk = self.desks.get(extension) if extension else None
        if desk is None:
            return Serving()
        customers: set[int] = set()
        calls = {str(CallKey(*key)) for key in (desk.offered, desk.call) if key is not None}
        if desk.pop is not None:
            shown = desk.pop.get("customer")
            customers |= {shown["id"]} if shown else {m["id"] for m in desk.pop.get("matches", [])}
            calls.add(str(CallKey(desk.pop["call"]["node"], desk.pop["call"]["linkedid"])))
        if desk.wrapup is not None:
            if desk.wrapup.get("customer_id") is not None:
                customers.add(desk.wrapup["customer_id"])
            calls.add(str(CallKey(desk.wrapup["node"], desk.wrapup["linkedid"])))
        return Serving(frozenset(customers), frozenset(calls))

    # -- events -------------------------------------------------------------------------------

    async def run(self, bus: Bus) -> None:
        """Follow the calls until cancelled."""
        subscription = bus.subscribe(*self.TRACKED)
        try:
            async for event in subscription:
                if not (isinstance(event, AgentRinging) and await self._popped_at_once(event)):
                    self.apply(event)
                if self._told and not self._ring_follows(subscription.peek()):
                    await self._send_told()
        finally:
            subscription.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def apply(self, event: DomainEvent) -> None:
        kind = type(event)
        handler = self._handlers.get(kind)
        if handler is None:  # a type first seen: its handler found once (1,000 rings at once)
            handler = self._handlers[kind] = next(
                (h for types, h in self._handled() if issubclass(kind, types)), _ignored
            )
        handler(event)

    def _handled(self) -> tuple[tuple[tuple[type[DomainEvent], ...], Handler], ...]:
        """What each kind of event does to the desks (the first that fits)."""
        return (
            ((CustomerIdentified, IvrFinished), self._caller_news),
            ((AgentRinging,), self._rang),
            ((CallAnswered,), self._answered),
            ((CallEnded,), self._call_ended),
            ((CallTransferred,), self.handovers.handed_over),
            ((TransferNoted,), self.handovers.noted),
            (SaidSoFar.TRACKED, self.said.apply),
            ((AgentStateChanged,), self._agent_changed),
            ((CallRouted, CallRangOut), self._route_decided),
            ((WrapUpStarted, WrapUpEnded), self.wrapups.news),
        )

    def _rang(self, event: AgentRinging) -> None:
        extension = _extension(event.agent)
        if extension and self.hub.desks_signed_in(extension):
            self.offer(self.desk(extension), CallKey.of(event))
            self.spawn(self._deliver_pop(extension, event))

    def _call_ended(self, event: CallEnded) -> None:
        self._ended(event)
        self.said.apply(event)
        self.notes.forget(CallKey.of(event))

    def _caller_news(self, event: CustomerIdentified | IvrFinished) -> None:
        """What the pop will show of the caller, gathered as the call arrives."""
        if isinstance(event, IvrFinished):
            self.pops.ivr_finished(event)
        else:  # nobody signed in: nobody to pop yet, the record is read if the call rings
            self.pops.identified(event, read_now=bool(self.hub.connections))

    def _agent_changed(self, event: AgentStateChanged) -> None:
        extension = _extension(event.agent)
        if extension and extension in self.desks:  # a closed tab's call goes on here
            self._agent_state(self.desks[extension], event)
        if extension and self.hub.desks_signed_in(extension):
            self._tell(extension, self.state_message(event.state, event.reason))

    def spawn(self, work: Any) -> None:
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

    def _tell(self, extension: str, message: dict[str, Any]) -> None:
        """A message for the desks of ``extension``, sent as soon as the event is applied."""
        self._told.append((extension, message))

    async def _send_told(self) -> None:
        """What the event gave the desks to say, in order, with no task of its own where the
        desks take it at once (a task per message costs at 1,000 agents); else by a task, so
        that a browser slow to read holds up no other desk."""
        told, self._told = self._told, []
        for extension, message in told:
            if not await self.hub.to_extension_at_once(extension, message):
                self.spawn(self._send(extension, message))

    def _ring_follows(self, following: DomainEvent | None) -> bool:
        """Whether the desks' last word is the state "ringing" of an agent whose ring is the
        next event (the tracker publishes the two together): that word is then kept to go in
        the ring's pop (:meth:`_pop_at_once`), one message where there were two, at 1,000
        agents a fifth of a pop's cost."""
        if not self._told or not isinstance(following, AgentRinging):
            return False
        extension, message = self._told[-1]
        return (
            message.get("type") == "state"
            and message.get("state") == AgentState.RINGING
            and extension == _extension(following.agent)
        )

    def _ringing_word(self, extension: str) -> dict[str, Any] | None:
        """The state "ringing" kept for the pop of ``extension`` (:meth:`_ring_follows`),
        taken off what the desks are yet to be told."""
        if self._told and self._told[-1][0] == extension:
            message = self._told[-1][1]
            if message.get("type") == "state" and message.get("state") == AgentState.RINGING:
                self._told.pop()
                return message
        return None

    async def _popped_at_once(self, event: AgentRinging) -> bool:
        try:
            return await self._pop_at_once(event)
        except Exception:  # as a pop's task failing would be: logged, and the desks go on
            log.exception("the pop of %s failed", event.linkedid)
            return True

    async def _pop_at_once(self, event: AgentRinging) -> bool:
        """A ring whose pop is ready (the caller's record read while they were in the IVR) and
        that its desks take at once is popped here, in the events' order, with no task of its
        own (a task per pop costs a pop at 1,000 agents), and with the agent's state "ringing"
        in it when that was the desks' last word (``agent_state``: the desk shows it as a
        ``state`` message); False: :meth:`apply` deals with it (no desk signed in, the record
        still being read, a browser slow to read), the state sent first."""
        extension = _extension(event.agent)
        pop = None
        if extension and self.hub.desks_signed_in(extension):
            pop = self.pops.ready(event)
        word = self._ringing_word(extension) if extension and pop is not None else None
        if self._told:  # what the desks were told before, in order
            await self._send_told()
        if not extension or pop is None:
            return False
        desk = self.desk(extension)
        key = self.pops.key_of(event)
        pop["call"]["state"] = "connected" if desk.call == key else "ringing"  # as sent
        text = ring_text(pop, None if word is None else _state_of(word))
        if not await self.hub.text_to_extension_at_once(extension, text):
            if word is not None:  # the state goes alone, before the pop
                self._tell(extension, word)
                await self._send_told()
            return False
        self.offer(desk, key)  # as :meth:`_showing`, the pop's state set already
        desk.pop = pop
        desk.agent_id = self.user_at(extension)
        return True

    def offer(self, desk: Desk, key: CallKey) -> None:
        """The call ``key`` rings at ``desk`` (or is handed to it)."""
        desk.offered = key
        self._rang_at.setdefault(key, {})[desk.extension] = None
        while len(self._rang_at) > MAX_CALLS:  # calls whose end was never seen
            self._rang_at.popitem(last=False)

    def _at(self, key: CallKey) -> list[Desk]:
        """The desks the call ``key`` is offered or answered at (and perhaps a few more)."""
        return [self.desks[e] for e in self._rang_at.get(key, ()) if e in self.desks]

    def _showing(self, desk: Desk, key: CallKey, pop: Record) -> None:
        """The desk shows ``pop``, of the call ``key`` ringing (or answered) there."""
        self.offer(desk, key)
        pop["call"]["state"] = "connected" if desk.call == key else "ringing"
        desk.pop = pop
        desk.agent_id = self.user_at(desk.extension)

    async def _deliver_pop(self, extension: str, event: AgentRinging) -> None:
        pop = await self.pops.pop_for(event)
        desk = self.desk(extension)
        key = CallKey.of(event)
        if desk.offered != key:
            return  # answered elsewhere or over while the record was read
        self._showing(desk, key, pop)
        await self.hub.to_extension(extension, pop)

    async def _add_routing(self, desk: Desk, routing: Record) -> None:
        """The router's word joins the pop on show, unless the pop already says it."""
        pop = desk.pop
        if pop is None or all(pop["routing"].get(k) == v for k, v in routing.items()):
            return
        pop["routing"] = {**pop["routing"], **routing}
        message = {"type": "pop_routing", "linkedid": pop["call"]["linkedid"], "routing": routing}
        await self.hub.to_extension(desk.extension, message)

    def _route_decided(self, event: CallRouted | CallRangOut) -> None:
        """The router's word joins the call's pops (kept by the pop service, which puts it in
        every pop of the call); a decision also joins the pop on show at its agent's desk."""
        said = self.pops.routed(event)
        if not isinstance(event, CallRouted):
            return
        key = CallKey.of(event)
        extension = event.extension
        desk = self.desks.get(extension)
        pop = desk.pop if desk is not None and key in (desk.offered, desk.call) else None
        if desk is not None and pop is not None and pop["call"]["linkedid"] == event.linkedid:
            self.spawn(self._add_routing(desk, said))

    def _answered(self, event: CallAnswered) -> None:
        answering = _extension(event.agent)
        key = CallKey.of(event)
        for desk in self._at(key):
            if desk.offered != key:
                continue
            if desk.extension == answering:
                self._connected(desk, key)
            else:  # rang here too, answered elsewhere
                desk.pop = desk.offered = None
                self._tell(desk.extension, {"type": "pop_cleared", **_ids(event)})

    def _connected(self, desk: Desk, key: CallKey) -> None:
        desk.call = key
        if desk.pop is not None:
            desk.pop["call"]["state"] = "connected"
        self._tell(desk.extension, {"type": "answered", "node": key[0], "linkedid": key[1]})

    def _ended(self, event: CallEnded) -> None:
        self.pops.ended(event.node, event.linkedid)
        extension = _extension(event.agent)
        key = CallKey.of(event)
        desks = self._at(key)
        for desk in desks:
            if key not in (desk.offered, desk.call):
                continue
            answered_here = desk.call == key or (
                event.outcome == "answered"
                and (desk.extension == extension or self.control.took_part(desk.extension, key))
            )
            if answered_here:
                self.wrapups.begin(desk, key, event.at)
            elif desk.wrapup is None:
                desk.pop = desk.offered = None
                self._tell(desk.extension, {"type": "pop_cleared", **_ids(event)})
        still = {d.extension: None for d in desks if key in (d.offered, d.call)}
        if still:  # a wrap-up goes on
            self._rang_at[key] = still
        else:
            self._rang_at.pop(key, None)

    def _agent_state(self, desk: Desk, event: AgentStateChanged) -> None:
        """A transfer's target answering, or the agent's own leg leaving a call still going on
        (a transfer: app_queue completes the agent's part), which ends their part of it."""
        if event.state == AgentState.ON_CALL and desk.call is None and desk.offered is not None:
            if desk.pop is not None and desk.pop["call"].get("transferred_by"):
                self._connected(desk, desk.offered)
            return
        if event.state in ON_A_CALL or desk.call is None:
            return
        if event.linkedid and self.control.in_call(desk.extension, desk.call):
            return  # a device state while the phone is still in the call (app_queue's own
            # completion, at a hang-up or a transfer, clears the agent's linkedid)
        self.wrapups.begin(desk, desk.call, event.at)

    def user_at(self, extension: str) -> int | None:
        return self.hub.user_at(extension)

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
        shown = "wrap_up" if state == AgentState.PAUSED and reason == WRAP_UP_REASON else state
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
        state = agent.state if agent is not None else AgentState.LOGGED_OUT
        messages.append(self.state_message(str(state), agent.reason if agent else ""))
        phones = self.deps.phones
        if phones is not None and phones.has(session.extension):
            messages.append(await phones.secret_message(session.extension))
        desk = self.desk(session.extension)
        if desk.pop is not None:
            messages.append(desk.pop)
        if desk.wrapup is not None:
            messages.append(self.wrapups.message(desk))
        return messages


@functools.lru_cache(maxsize=4096)
def _extension(agent: str) -> str:
    """:func:`extension_of`, remembered: every ring asks it of the same agents' names."""
    return extension_of(agent)


def _state_of(message: dict[str, Any]) -> dict[str, Any]:
    """A ``state`` message's fields (:meth:`Desks.state_message`), as a pop carries them."""
    return {"state": message["state"], "reason": message["reason"]}


def _ignored(_event: Any) -> None:
    """What the desks do with an event none of their handlers takes."""


Handler = Callable[[Any], None]


def _ids(event: CallAnswered | CallEnded) -> dict[str, str]:
    return {"node": event.node, "linkedid": event.linkedid}


DESKS = web.AppKey("ui_desks", Desks)


@pages.route("GET", "/desktop", least("desk.use"), name="desktop")
async def desktop_page(request: web.Request) -> web.StreamResponse:
    """The desk; with the agent's browser phone when that is their phone (its secret comes over
    the socket, and the page may connect to that phone server only)."""
    deps = request.app[DEPS]
    extension = request[UI_SESSION].extension
    phone = None
    if deps.phones is not None and deps.phones.has(extension):
        assert extension is not None
        phone = deps.phones.account(extension, request.url.host or "127.0.0.1")
        request[PHONE_SERVER] = phone.origin
    return render(
        request,
        "desktop.html",
        dispositions=deps.settings.dispositions,
        pause_reasons=PAUSE_REASONS,
        transfer_queues=deps.control.transfer_queues,
        extension=extension,
        phone=phone.page_data() if phone is not None else None,
    )
