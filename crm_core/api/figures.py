"""Agents' figures over the API: calls handled, own talk time and average handle time, from each
agent's own segments of calls (:mod:`crm_core.agent_figures`), so that whoever took a call by
transfer is counted with their own time. Supervisors and above read every agent; an agent reads
their own row."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_core.access import every_row, least
from crm_core.agent_figures import AgentSegments, agent_segments
from crm_core.api.handlers import routes
from crm_core.api.http import SESSIONS, current_user, query_of

_WHEN = (
    "ISO 8601 with a timezone, e.g. 2026-11-02T00:00:00Z (a `+01:00` offset must be sent "
    "as `%2B01:00` in a URL)"
)


class FiguresQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    since: Annotated[AwareDatetime, Field(description=f"segments that started from then; {_WHEN}")]
    until: Annotated[AwareDatetime, Field(description=f"to then, excluded; after `since`; {_WHEN}")]


class AgentFiguresOut(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    agent_id: int | None = Field(description="the user; null for a party the CRM has no user for")
    name: str = Field(description="the user's display name, else the queue member or extension")
    extension: str | None
    calls: int = Field(description="calls they had the customer on (a transfer's target too)")
    talk_seconds: float = Field(
        description="their own talk time: from taking the customer on "
        "to handing them over or the end"
    )
    average_handle_seconds: float = Field(
        description="talk seconds per call handled (after-call work not counted)"
    )


class AgentFiguresPage(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    since: datetime
    until: datetime
    items: list[AgentFiguresOut] = Field(description="most calls first")


def figures_out(row: AgentSegments) -> AgentFiguresOut:
    return AgentFiguresOut(
        agent_id=row.agent_id,
        name=row.name,
        extension=row.extension,
        calls=row.calls,
        talk_seconds=round(row.talk_seconds, 1),
        average_handle_seconds=round(row.average_talk, 1),
    )


@routes.route(
    "GET",
    "/agents/figures",
    "Each agent's calls handled, own talk time and average handle time in a window "
    "(agents: their own row)",
    response=AgentFiguresPage,
    query=FiguresQuery,
    min_role=least("figures.read"),
)
async def agent_figures(request: web.Request) -> AgentFiguresPage:
    window = query_of(request, FiguresQuery)
    user = current_user(request)
    only = None if every_row(user.role, "figures.read") else user.id
    async with request.app[SESSIONS]() as session:
        rows = await agent_segments(session, window.since, window.until, only=only)
    return AgentFiguresPage(
        since=window.since, until=window.until, items=[figures_out(row) for row in rows]
    )
