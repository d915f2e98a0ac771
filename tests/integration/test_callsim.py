"""`cti simulate` on real Asterisk: CRM customers call, walk the IVR, talk to virtual agents;
unhappy ones rate the call low and call again, and their complaint reaches the CRM as a case."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.customers import create_customer
from crm_core.models import ComplaintCase, ComplaintSignal, Interaction
from crm_core.schemas import CustomerIn
from cti_server.app import DATABASE, TRANSCRIPTION
from cti_server.config import IvrSettings
from cti_server.sim.arrivals import Arrival, poisson
from cti_server.sim.callers import load_callers
from cti_server.sim.personas import personas
from cti_server.sim.plan import Caller, CallPlan
from cti_server.sim.runner import CallSimulator
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import running_ivr_app
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


def _unhappy_billing_call(arrival: Arrival, caller: Caller | None, _rng: random.Random) -> CallPlan:
    """The customer from their own phone, billing (key 1), the explicit complaint persona."""
    assert caller is not None
    persona = next(p for p in personas() if p.name == "en-explicit")
    return CallPlan(
        number=caller.number,
        name=caller.name,
        tier=caller.tier,
        known=True,
        intent="billing",
        dtmf="1",
        pre_wait=3.0,
        persona=persona,
        patience=40.0,
        talk=3.0,
    )


@pytest.mark.asyncio
async def test_an_unhappy_customer_rates_low_calls_again_and_a_case_opens_without_speech(
    asterisk_node: AsteriskNode, tmp_path: Path, ami: tuple[AmiClient, EventLog]
) -> None:
    client, _ = ami
    async with running_ivr_app(asterisk_node, tmp_path, IvrSettings()) as app:
        assert not app[TRANSCRIPTION].active, "no speech model: no transcript will come"
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            await create_customer(session, CustomerIn.model_validate(CUSTOMERS[1]), "CN")
        async with sessions() as session:
            callers = await load_callers(session)

        simulator = CallSimulator(
            asterisk_node.settings,
            callers,
            seed=5,
            call_back_after=2.0,
            planner=_unhappy_billing_call,
        )
        async with sim_agents(client, "support", ["8211"]):
            arrivals = poisson(30.0, random.Random(5))
            summary = await simulator.run(arrivals, max_calls=1)

        assert (summary.placed, summary.answered, summary.ended) == (2, 2, 2)
        assert summary.called_again == 1
        assert summary.rated == 2
        first, again = simulator.placed_calls()

        async def _case() -> tuple[ComplaintCase, list[ComplaintSignal], list[Interaction]] | None:
            async with sessions() as session:
                case = await session.scalar(select(ComplaintCase))
                signals = list(await session.scalars(select(ComplaintSignal)))
                rows = list(await session.scalars(select(Interaction).order_by(Interaction.id)))
            return (case, signals, rows) if case is not None else None

        case, signals, rows = await poll_until(_case, 60, what="a case from the second call")
    assert [r.external_key.split(":", 1)[1] for r in rows] == [first, again]
    assert [r.survey_score for r in rows] == [1, 1], "rated 1 after the agent hung up, twice"
    assert {r.routing["attributes"]["intent"] for r in rows} == {"billing"}
    assert rows[0].customer_id == rows[1].customer_id == case.customer_id
    assert [s.interaction_id for s in signals] == [rows[1].id], "a low score alone is none"
    assert case.source_signal_id == signals[0].id
    assert case.status == "open"
    assert (case.category, case.severity) == ("service", "high")
    cues = {e["cue"]: e["kind"] for e in case.evidence}
    assert cues == {"survey_score=1": "fact", "repeat_call_same_topic_7d": "fact"}
