"""The desks' wrap-up: begun when the agent's part of a call is over (the agent control pauses
them and keeps the deadline, publishing ``WrapUpStarted`` and ``WrapUpEnded``); the form,
checked; its one write to the CRM (the call's interaction with the disposition and notes, and a
follow-up task when one is asked for), by the agent or, at the deadline, with the default
disposition."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.pop import Record
from agent_ui.ws import UiError
from crm_core.errors import CrmError
from crm_core.followups import create_follow_up
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from crm_core.text_rules import unsafe_character
from cti_server.events import CallKey, WrapUpEnded, WrapUpStarted

if TYPE_CHECKING:
    from agent_ui.desktop import Desk, Desks

log = logging.getLogger(__name__)

DEFAULT_DISPOSITION = "no_action"  # stored when the wrap-up's time runs out


@dataclass(frozen=True)
class WrapUpForm:
    """What the agent sent (or, at the deadline, the default)."""

    disposition: str
    notes: str = ""
    due: datetime | None = None  # a follow-up task's due time
    follow_up_note: str = ""

    @classmethod
    def of(
        cls, message: dict[str, Any], dispositions: tuple[str, ...], customer_id: int | None
    ) -> WrapUpForm:
        """The desk's ``wrapup`` message, checked; UiError names what is wrong."""
        disposition = str(message.get("disposition", ""))
        if disposition not in dispositions:
            raise UiError("choose a disposition")
        due = _when(message.get("follow_up_at"))
        follow_up_note = str(message.get("follow_up_note", ""))
        unsafe = unsafe_character(follow_up_note)
        if unsafe is not None:
            raise UiError(f"follow-up note: {unsafe} is not allowed")
        if due is not None and customer_id is None:
            raise UiError("a follow-up needs a customer: create or choose the customer first")
        return cls(disposition, str(message.get("notes", "")), due, follow_up_note)

    def interaction(self, pending: Record, agent_id: int | None) -> InteractionIn:
        """The interaction of the wrap-up ``pending``; UiError when the CRM's schema refuses."""
        try:
            return InteractionIn(
                node=pending["node"],
                linkedid=pending["linkedid"],
                disposition=self.disposition,
                notes=self.notes[:10000],
                agent_id=agent_id,
                customer_id=pending.get("customer_id"),
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise UiError(f"wrap-up refused: {where}: {error['msg']}") from None


async def store_wrap_up(
    db: async_sessionmaker[AsyncSession],
    data: InteractionIn,
    form: WrapUpForm,
    agent_id: int | None,
) -> None:
    """One transaction: the interaction, then the follow-up task (when due and a customer)."""
    async with db() as session, session.begin():
        row = await record_interaction(session, data)
        if form.due is not None and data.customer_id is not None:
            await create_follow_up(
                session,
                customer_id=data.customer_id,
                due_at=form.due,
                owner_id=agent_id,
                note=form.follow_up_note[:2000],
                interaction_id=row.id,
            )


class WrapUps:
    """Every desk's pending wrap-up (``Desk.wrapup``), from its start to its one write."""

    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        self.control = desks.control
        self.hub = desks.hub
        self.deps = desks.deps

    def begin(self, desk: Desk, key: CallKey, at: datetime) -> None:
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
        desk.wrapup_agent = self.desks.user_at(desk.extension) or desk.agent_id
        self.control.start_wrap_up(desk.extension, key)

    def _pending(self, event: WrapUpStarted | WrapUpEnded) -> tuple[Desk, Record] | None:
        """The desk's wrap-up the event is about, if this server's desk still has it open."""
        desk = self.desks.desks.get(event.extension)
        pending = desk.wrapup if desk is not None else None
        if desk is None or pending is None:
            return None
        if CallKey(pending["node"], pending["linkedid"]) != CallKey.of(event):
            return None
        return desk, pending

    def news(self, event: WrapUpStarted | WrapUpEnded) -> None:
        """The control paused the agent (the form shows with its time left) or the deadline
        passed first (what is known is stored)."""
        found = self._pending(event)
        if found is None:
            return
        if isinstance(event, WrapUpStarted):
            self.desks.spawn(self.hub.to_extension(event.extension, self.message(found[0])))
        elif event.timed_out:
            self.desks.spawn(self._expired(*found))

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

    def message(self, desk: Desk) -> Record:
        """The pending wrap-up with the seconds left by the server's clock, which the browser's
        countdown follows (its own clock may differ)."""
        assert desk.wrapup is not None
        left = self.control.wrap_up_left(desk.extension)
        seconds = desk.wrapup["seconds"] if left is None else left
        return {**desk.wrapup, "left": max(0, round(seconds))}


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
