"""Agents' figures from their own segments of calls (``interaction_parties``), not from the
interaction's answerer: an agent who took a call by transfer handled it too, with their own talk
time, and the first agent's time ends at the hand-over.

A call counts once for an agent however often they had it (A → B → A is one call for A, with
both of A's segments' time). Segments belong to the window in which they started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import InvalidInput
from crm_core.models import InteractionParty, User


@dataclass(frozen=True, slots=True)
class AgentSegments:
    """One agent's calls handled and talk time in a window. ``agent_id`` is None for a party
    the CRM has no user for (then known by its extension, or its device)."""

    agent_id: int | None
    name: str
    extension: str | None
    calls: int
    talk_seconds: float

    @property
    def average_talk(self) -> float:
        """Seconds of talk per call handled: their share of the handle time."""
        return self.talk_seconds / self.calls if self.calls else 0.0


async def agent_segments(
    session: AsyncSession, since: datetime, until: datetime, *, only: int | None = None
) -> list[AgentSegments]:
    """Per agent, the calls they had the customer on and their talk seconds, for the segments
    that started in ``[since, until)``; most calls first. ``only``: that user's row alone
    (an agent reads their own figures, not their colleagues')."""
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since and until need a timezone")
    if until <= since:
        raise InvalidInput("until must be after since")
    in_window: list[ColumnElement[bool]] = [
        InteractionParty.started_at >= since,
        InteractionParty.started_at < until,
    ]
    if only is not None:
        in_window.append(InteractionParty.agent_id == only)
    calls = func.count(distinct(InteractionParty.interaction_id))
    talk = func.coalesce(func.sum(InteractionParty.seconds), 0.0)
    users = await session.execute(
        select(User.id, User.display_name, User.extension, calls, talk)
        .join(User, User.id == InteractionParty.agent_id)
        .where(*in_window)
        .group_by(User.id, User.display_name, User.extension)
    )
    found = [
        AgentSegments(agent_id, name, extension, count, float(seconds))
        for agent_id, name, extension, count, seconds in users
    ]
    if only is not None:
        return found
    who = func.coalesce(InteractionParty.extension, InteractionParty.party)
    strangers = await session.execute(
        select(who, func.max(InteractionParty.agent_name), calls, talk)
        .where(*in_window, InteractionParty.agent_id.is_(None))
        .group_by(who)
    )
    found += [
        AgentSegments(None, agent_name or key, key, count, float(seconds))
        for key, agent_name, count, seconds in strangers
    ]
    return sorted(found, key=lambda figures: (-figures.calls, figures.name))
