"""The wallboard's live agent grid says, under an agent's name, that several of their calls
today sounded poor on their browser phone; an agent with one poor call, or none, is not
flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.app import create_ui
from agent_ui.wallboard import WALLBOARD
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn
from cti_server.bus import MemoryBus
from cti_server.tracker.tracker import Tracker
from tests.support.blank_crm import blank_crm
from tests.support.live_model import answered_call
from tests.support.ui import add_users
from tests.support.ui_server import ui_deps


async def _board_view(db: async_sessionmaker[AsyncSession], tracker: Tracker) -> dict[str, Any]:
    """What a supervisor's wallboard is first sent."""
    board = create_ui(ui_deps(db, MemoryBus(), tracker))
    [view] = await board[WALLBOARD].greeting(cast(Any, None))
    return view


def _summary(jitter_ms: float) -> dict[str, Any]:
    return {"seconds": 80.0, "final": True, "jitter_ms": jitter_ms, "packets_received": 4000}


@pytest.mark.asyncio
async def test_an_agent_with_several_poor_calls_today_is_flagged_in_the_live_grid(
    tmp_path: Path,
) -> None:
    earlier = datetime.now(UTC) - timedelta(seconds=30)  # today, unless just after midnight
    earlier = max(earlier, earlier.replace(hour=0, minute=0, second=0, microsecond=0))
    async with blank_crm(tmp_path) as db:
        await add_users(db, ("alice", "agent", "8101"), ("bob", "agent", "8102"))
        async with db() as session, session.begin():
            for number, (extension, jitter) in enumerate(
                [("8101", 60.0), ("8101", 5.0), ("8101", 45.0), ("8102", 70.0), ("8102", 3.0)]
            ):
                party = {"party": f"PJSIP/{extension}", "extension": extension, "how": "answer"}
                fields = {
                    "node": "pbx1",
                    "linkedid": f"1700000000.{number}",
                    "parties": [{**party, "started_at": earlier, "seconds": 80.0}],
                    "quality": {extension: _summary(jitter)},
                }
                await record_interaction(session, InteractionIn.model_validate(fields))
        tracker = Tracker(MemoryBus().publish)
        answered_call(tracker, "pbx1", "1700000000.9", "support", "agent-8101")
        answered_call(tracker, "pbx1", "1700000000.8", "support", "agent-8102")
        view = await _board_view(db, tracker)
    audio = {agent["name"]: agent["audio"] for agent in view["agents"]}
    assert audio == {"alice": "poor audio on 2 of 3 calls: jitter", "bob": ""}


@pytest.mark.asyncio
async def test_a_call_row_names_the_agent_on_it_as_the_supervisor_knows_them(
    tmp_path: Path,
) -> None:
    async with blank_crm(tmp_path) as db:
        await add_users(db, ("alice", "agent", "8101"))
        tracker = Tracker(MemoryBus().publish)
        answered_call(tracker, "pbx1", "1700000000.9", "support", "agent-8101")
        answered_call(tracker, "pbx1", "1700000000.8", "support", "agent-8102")  # no user
        view = await _board_view(db, tracker)
    labels = {call["linkedid"]: call["agent_label"] for call in view["calls"]}
    assert labels == {"1700000000.9": "alice (8101)", "1700000000.8": "agent-8102"}
