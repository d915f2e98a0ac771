"""Hand-overs at the desks: a new party has the customer (``CallTransferred``: a desktop or
phone transfer, a pickup, a forward, an AMI ``Redirect``). The desk left behind is told whom the
customer went to and its part ends (wrap-up if it had answered); the desk of the new party pops
with the hand-over panel (:mod:`agent_ui.handover`). A transfer made from a desk pops on the
target's desk as soon as its phone rings; the note typed with it travels as ``TransferNoted``."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from agent_ui.handover import Note, how, panel, party_label, user_name
from agent_ui.pop import Record
from agent_ui.ws import Connection
from cti_server.events import CallKey, CallTransferred, TransferNoted, extension_of

if TYPE_CHECKING:
    from agent_ui.desktop import Desk, Desks

log = logging.getLogger(__name__)


class HandOvers:
    """The desks' part of every hand-over."""

    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        self.hub = desks.hub
        self.notes = desks.notes
        self.said = desks.said
        self.pops = desks.pops
        self.control = desks.control
        self.deps = desks.deps

    def handed_over(self, event: CallTransferred) -> None:
        """A new party has the customer: the desk it left is told and its part ends; the desk
        of the new party pops with the hand-over. The desks' state changes now, in bus order;
        what needs the CRM (the pop, the names) follows."""
        key = CallKey.of(event)
        target = event.to_extension or extension_of(event.to_agent) or ""
        source = event.from_extension or extension_of(event.from_agent) or ""
        note = self.notes.take(key, source)
        if source and source != target:
            self._left(source, key, event, target)
        if not target or not self.hub.desks_signed_in(target):
            return
        desk = self.desks.desk(target)
        if desk.call is not None and desk.call != key:
            self.desks.wrapups.begin(desk, desk.call, event.at)  # their phone took this one over
        pending = desk.wrapup
        if pending is not None and CallKey(pending["node"], pending["linkedid"]) == key:
            desk.wrapup = None  # the customer is back (A to B to A): one wrap-up, at the end
            self.control.cancel_wrap_up(target, key)
        self.desks.offer(desk, key)
        desk.call = key
        desk.agent_id = self.desks.user_at(target)
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
        self.desks.spawn(self._deliver(desk, event, said))

    async def _deliver(self, desk: Desk, event: CallTransferred, said: Record) -> None:
        key = CallKey.of(event)
        name = await self._name_of(said["from"]["extension"])
        said["from"] = {**said["from"], "name": name or ""}
        said["from"]["label"] = party_label(name, said["from"]["extension"], event.from_party)
        shown = desk.pop
        if shown is not None and CallKey(shown["call"]["node"], shown["call"]["linkedid"]) == key:
            pop = copy.deepcopy(shown)  # the desktop's ring-time pop: its look-up is done
        else:
            pop = await self.pops.pop_for(event)
        if desk.call != key:
            return  # over, or handed on again, while the record was read
        pop["call"]["state"] = "connected"
        pop["call"]["transferred_by"] = name or said["from"]["label"]
        pop["handover"] = said
        desk.pop = pop
        await self.hub.to_extension(desk.extension, pop)

    def _left(self, source: str, key: CallKey, event: CallTransferred, to: str) -> None:
        """The party ``source`` no longer has the customer: a call it had is wrapped up, a pop
        of a call only ringing there (a pickup) closes."""
        desk = self.desks.desks.get(source)
        if desk is None:
            return
        pending = desk.wrapup
        wrapping = pending is not None and CallKey(pending["node"], pending["linkedid"]) == key
        if key not in (desk.offered, desk.call) and not wrapping:
            return
        had_it = desk.call == key or wrapping  # wrapping: app_queue ended their part first
        if had_it:
            self.desks.wrapups.begin(desk, key, event.at)
        else:
            desk.pop = desk.offered = None
        self.desks.spawn(self._tell_left(desk, event, to, closed=not had_it))

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

    def noted(self, event: TransferNoted) -> None:
        key = CallKey.of(event)
        if self.notes.peek(key) is None:  # another server's desk wrote it
            self.notes.keep(key, Note(event.note, event.by_extension, event.by_name))

    async def pop_transferred(self, target: str, key: CallKey, pop: Record, by: Connection) -> None:
        """The agent the call was transferred to sees the caller's pop as their phone rings
        (no queue offers it to them, so no ``AgentRinging`` will), with the hand-over panel;
        the tracker's ``CallTransferred`` refreshes it once they have the customer."""
        if not self.hub.desks_signed_in(target):
            return
        desk = self.desks.desk(target)
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
        self.desks.offer(desk, key)
        desk.pop = shown
        desk.agent_id = self.desks.user_at(target)
        await self.hub.to_extension(target, shown)
