"""The wrap-up's form, checked, and its one write to the CRM: the call's interaction with the
disposition and notes, and a follow-up task when one is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.pop import Record
from agent_ui.ws import UiError
from crm_core.followups import create_follow_up
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from crm_core.text_rules import unsafe_character

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
