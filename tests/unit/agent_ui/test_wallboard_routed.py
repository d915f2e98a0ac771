"""With routing on, the wallboard speaks of the queues customers call, not of the agents' own
queues the router rings them through: a routed call is in support, offered to a person."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from agent_ui.app import create_ui
from agent_ui.wallboard import WALLBOARD
from cti_server.bus import MemoryBus
from tests.support.blank_crm import blank_crm
from tests.support.routing_centre import CALLER, Centre
from tests.support.ui import add_users
from tests.support.ui_server import ui_deps


@pytest.mark.asyncio
async def test_a_routed_call_is_in_the_queue_its_customer_called_offered_to_a_person(
    tmp_path: Path,
) -> None:
    async with blank_crm(tmp_path) as db:
        await add_users(db, ("alice", "agent", "3001"))
        centre = Centre()
        centre.sign_in("3001")
        centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER, CallerIDNum="+861")
        centre.caller_joins("support")
        centre.caller_leaves("support")  # withdrawn by the router into alice's own queue
        centre.caller_joins("agent-3001")
        board = create_ui(ui_deps(db, MemoryBus(), centre.tracker, routing=centre.router))
        [view] = await board[WALLBOARD].greeting(cast(Any, None))
    [call] = view["calls"]
    assert (call["service_queue"], call["offered_to"]) == ("support", "alice (3001)")
    assert "agent-3001" not in [q["queue"] for q in view["queues"]]
    assert [(a["agent"], a["name"]) for a in view["agents"]] == [("sim-3001", "alice")]
