"""Follow-ups: callbacks and reminders, each with a due time and an owner."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import follow_ups_visible, may_touch_follow_up
from crm_core.customers import get_customer
from crm_core.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from crm_core.models import FollowUp, Interaction, User, utcnow


async def create_follow_up(
    session: AsyncSession,
    *,
    customer_id: int,
    due_at: datetime,
    owner_id: int | None,
    kind: str = "callback",
    note: str = "",
    interaction_id: int | None = None,
) -> FollowUp:
    """A task for an existing customer, owned by an existing active user (or nobody): a
    callback promised to nobody real would never be made."""
    await get_customer(session, customer_id)
    if kind not in ("callback", "reminder"):
        raise InvalidInput("kind: callback or reminder")
    if owner_id is not None:
        owner = await session.get(User, owner_id)
        if owner is None or not owner.active:
            raise InvalidInput(f"owner_id: no active user {owner_id}")
    if interaction_id is not None and await session.get(Interaction, interaction_id) is None:
        raise NotFound(f"interaction {interaction_id} does not exist")
    task = FollowUp(
        customer_id=customer_id,
        due_at=due_at,
        owner_id=owner_id,
        kind=kind,
        note=note,
        interaction_id=interaction_id,
    )
    session.add(task)
    await session.flush()
    return task


async def follow_ups_for(
    session: AsyncSession, viewer: User, *, status: str = "open", limit: int = 50, offset: int = 0
) -> list[FollowUp]:
    """Agents see their own and unowned tasks; the others see all."""
    query = select(FollowUp).where(FollowUp.status == status)
    visible = follow_ups_visible(viewer)
    if visible is not None:
        query = query.where(visible)
    result = await session.scalars(
        query.order_by(FollowUp.due_at, FollowUp.id).limit(limit).offset(offset)
    )
    return list(result)


async def complete_follow_up(session: AsyncSession, task_id: int, actor: User) -> FollowUp:
    task = await session.get(FollowUp, task_id)
    if task is None:
        raise NotFound(f"follow-up {task_id} does not exist")
    if not may_touch_follow_up(actor, task):
        raise Forbidden("this follow-up belongs to someone else")
    if task.status != "open":
        raise InvalidTransition(f"follow-up {task_id} is {task.status}")
    task.status = "done"
    task.done_at = utcnow()
    task.owner_id = task.owner_id or actor.id
    await session.flush()
    return task
