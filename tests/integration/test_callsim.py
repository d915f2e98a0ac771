"""`cti simulate` on real Asterisk: CRM customers call, walk the IVR, talk to virtual agents."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.customers import create_customer
from crm_core.models import Interaction
from crm_core.schemas import CustomerIn
from cti_server.app import DATABASE
from cti_server.callsim.arrivals import poisson
from cti_server.callsim.callers import load_callers
from cti_server.callsim.runner import CallSimulator
from cti_server.config import IvrSettings
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.integration.test_ivr import running_ivr_app
from tests.support.asterisk import AsteriskNode
from tests.support.waiting import EventLog, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

NUMBERS = ("+8613911110001", "+8613911110002", "+8613911110003")
CUSTOMERS: list[dict[str, object]] = [
    {"name": "王芳", "phones": [{"number": NUMBERS[0]}], "language": "zh"},
    {"name": "Alice Smith", "phones": [{"number": NUMBERS[1]}], "language": "en"},
    {"name": "李强", "phones": [{"number": NUMBERS[2]}], "tier_override": "gold"},
]


@pytest.mark.asyncio
async def test_simulated_customers_walk_the_ivr_and_speak_to_the_agent(
    asterisk_node: AsteriskNode, tmp_path: Path, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with running_ivr_app(asterisk_node, tmp_path, IvrSettings(survey_flow=None)) as app:
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            for data in CUSTOMERS:
                await create_customer(session, CustomerIn.model_validate(data), "CN")
        async with sessions() as session:
            callers = await load_callers(session)
        assert {c.number for c in callers} == set(NUMBERS)

        simulator = CallSimulator(asterisk_node.settings, callers, seed=11)
        async with sim_agents(client, "support", ["8201", "8202", "8203", "8204"]):
            arrivals = poisson(30.0, random.Random(11), mean_patience=20.0, mean_talk=2.0)
            summary = await simulator.run(arrivals, max_calls=4)

        assert summary.placed == 4
        assert summary.ended == 4
        assert summary.answered >= 3  # four agents for four calls: at most a straggler gives up
        ids = set(simulator.placed_calls())

        async def _recorded() -> list[Interaction] | None:
            async with sessions() as session:
                rows = list(await session.scalars(select(Interaction)))
            mine = [r for r in rows if r.external_key.split(":", 1)[1] in ids]
            done = len(mine) == 4 and all(r.ended_at and r.ivr_path for r in mine)
            return mine if done else None

        rows = await poll_until(_recorded, 30, what="the four calls in the CRM")
    answered = [r for r in rows if r.answered_at is not None]
    assert len(answered) == summary.answered
    intents = {r.routing["attributes"].get("intent") for r in answered}
    assert intents <= {"billing", "sales", "operator"}
    # each answered customer said their persona's line to the agent, after the agent answered
    spoken = {
        str(e.get("Linkedid"))
        for e in log.events
        if e.get("Event") == "Newexten"
        and e.get("Application") == "Playback"
        and str(e.get("AppData", "")).startswith("cti/sim-")
        and str(e.get("AppData")) != "cti/sim-agent"
    }
    assert {r.external_key.split(":", 1)[1] for r in answered} <= spoken
