"""A caller who would rather be called back than wait (or who left a voicemail) keeps their
place as a follow-up task: the CRM rule, whichever channel took the request."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.callers import customer_for_caller
from crm_core.models import FollowUp


class CallbackRequest(BaseModel):
    """The caller's request as the IVR took it: their place in ``queue`` and when they called."""

    model_config = ConfigDict(frozen=True)

    caller_number: str
    queue: str
    estimated_wait: int
    customer_id: int | None
    requested_at: datetime
    kind: Literal["callback", "voicemail"] = "callback"
    recording: str = ""
    position: int = 0  # the caller's place in the queue when offered (1: next); 0: unknown
    joined_at: datetime | None = None  # when they called: callbacks are due in this order

    def note(self) -> str:
        if self.kind == "voicemail":
            return f"Voicemail left in the IVR for {self.queue}: {self.recording}"
        place = f"number {self.position} in line, " if self.position else ""
        return (
            f"Callback instead of waiting in {self.queue} ({place}estimated wait "
            f"{self.estimated_wait} s); keeps the place from "
            f"{(self.joined_at or self.requested_at).isoformat()}"
        )


async def callback_task(
    session: AsyncSession, interaction_id: int, request: CallbackRequest, region: str
) -> FollowUp:
    """The follow-up that keeps a caller's place: once per interaction (a journal replays it).
    A stranger who asks to be called back becomes a customer."""
    existing = await session.scalar(
        select(FollowUp).where(
            FollowUp.interaction_id == interaction_id, FollowUp.kind == request.kind
        )
    )
    if existing is not None:
        return existing
    customer_id = request.customer_id
    if customer_id is None:
        customer_id = await customer_for_caller(session, request.caller_number, region)
    # the caller's place: due at the time they called, so callbacks come first-called first
    joined = request.joined_at or request.requested_at
    task = FollowUp(
        customer_id=customer_id,
        interaction_id=interaction_id,
        kind=request.kind,
        due_at=joined,
        note=request.note(),
        queue=request.queue[:64],
        queue_position=request.position or None,
        joined_at=joined,
        estimated_wait=request.estimated_wait,
    )
    session.add(task)
    await session.flush()
    return task
