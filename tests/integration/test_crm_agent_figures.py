"""Agents' figures follow their own segments (SQLite and PostgreSQL): whoever took a call by
transfer handled it, with their own talk time; the first agent's time ends at the hand-over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.agent_figures import AgentSegments, agent_segments
from crm_core.errors import InvalidInput
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from tests.support.ui import add_users

Sessions = async_sessionmaker[AsyncSession]
DAY = datetime(2026, 11, 2, tzinfo=UTC)


def _chain(start: datetime, *parties: tuple[str, int | None, float]) -> list[dict[str, Any]]:
    """(extension, user id, seconds) each, handed over one after the other."""
    rows, previous = [], ""
    for extension, agent_id, seconds in parties:
        rows.append(
            {
                "party": f"PJSIP/{extension}",
                "extension": extension,
                "agent_id": agent_id,
                "how": "attended" if previous else "answer",
                "by_party": previous or None,
                "started_at": start,
                "ended_at": start + timedelta(seconds=seconds),
                "seconds": seconds,
            }
        )
        start += timedelta(seconds=seconds)
        previous = f"PJSIP/{extension}"
    return rows


@pytest.mark.asyncio
async def test_each_agent_counts_the_calls_they_had_and_their_own_talk(crm: Sessions) -> None:
    ids = await add_users(crm, ("lina", "agent", "1001"), ("wangwei", "agent", "1002"))
    a, b = ("1001", ids["lina"]), ("1002", ids["wangwei"])
    nine = DAY + timedelta(hours=9)
    calls = {
        "c1": _chain(nine, (*a, 130), (*b, 65), ("1003", None, 20)),  # A → B → a stranger
        "c2": _chain(nine + timedelta(hours=1), (*b, 50)),
        "c3": _chain(nine + timedelta(hours=2), (*a, 10), (*b, 20), (*a, 30)),  # back to A
        "c4": _chain(DAY - timedelta(minutes=5), (*a, 600)),  # the day before: not counted
    }
    async with crm() as s, s.begin():
        for linkedid, parties in calls.items():
            data = InteractionIn.model_validate(
                {"node": "pbx1", "linkedid": linkedid, "parties": parties}
            )
            await record_interaction(s, data)
    async with crm() as s:
        figures = await agent_segments(s, DAY, DAY + timedelta(days=1))
    assert figures == [
        AgentSegments(ids["wangwei"], "wangwei", "1002", 3, 135.0),
        AgentSegments(ids["lina"], "lina", "1001", 2, 170.0),
        AgentSegments(None, "1003", "1003", 1, 20.0),
    ]
    assert figures[1].average_talk == 85.0


@pytest.mark.asyncio
async def test_a_window_that_ends_before_it_starts_is_refused(crm: Sessions) -> None:
    async with crm() as s:
        with pytest.raises(InvalidInput, match="until must be after since"):
            await agent_segments(s, DAY, DAY)
        with pytest.raises(InvalidInput, match="timezone"):
            await agent_segments(s, DAY.replace(tzinfo=None), DAY + timedelta(days=1))
