"""End to end under load: simulated customers through real Asterisk, the IVR, the queue and
virtual agents into the CRM; every call is there, and the counts are Asterisk's own."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.customers import create_customer
from crm_core.models import Interaction
from crm_core.schemas import CustomerIn
from cti_server.app import DATABASE
from cti_server.config import IvrSettings
from cti_server.sim.arrivals import poisson
from cti_server.sim.callers import load_callers
from cti_server.sim.runner import CallSimulator
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import running_ivr_app
from tests.support.queue_log import QueueLogCall, all_ended
from tests.support.waiting import EventLog, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLS = 12
TIERS = ("platinum", "gold", "silver", "standard")


@pytest.mark.asyncio
async def test_every_simulated_call_lands_in_the_crm_as_asterisk_counted_it(
    asterisk_node: AsteriskNode, tmp_path: Path, ami: tuple[AmiClient, EventLog]
) -> None:
    client, _ = ami
    queue_log = asterisk_node.instance.log_dir / "queue_log"
    async with running_ivr_app(asterisk_node, tmp_path, IvrSettings(survey_flow=None)) as app:
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            for n in range(24):
                data = {
                    "name": f"Load Customer {n}",
                    "phones": [{"number": f"+86139222{n:05d}"}],
                    "language": ("en", "zh")[n % 2],
                    "tier_override": TIERS[n % 4],
                }
                await create_customer(session, CustomerIn.model_validate(data), "CN")
        async with sessions() as session:
            callers = await load_callers(session)
        simulator = CallSimulator(asterisk_node.settings, callers, seed=2026)
        # two agents talking ~8 s for a call every ~1.5 s: a queue builds, some callers give up
        arrivals = poisson(40.0, random.Random(2026), mean_patience=8.0, mean_talk=8.0)
        async with sim_agents(client, "support", ["8401", "8402"]):
            summary = await simulator.run(arrivals, max_calls=CALLS)
        plans = simulator.plans()
        ids = set(plans)

        async def _asterisk_done() -> dict[str, QueueLogCall] | None:
            return all_ended(queue_log, ids)

        truth = await poll_until(_asterisk_done, 60, interval=0.5, what="queue_log complete")

        async def _recorded() -> dict[str, Interaction] | None:
            async with sessions() as session:
                rows = {
                    r.external_key.split(":", 1)[1]: r
                    for r in await session.scalars(select(Interaction))
                }
            done = ids <= rows.keys() and all(rows[i].ended_at for i in ids)
            return rows if done else None

        rows = await poll_until(_recorded, 60, interval=0.5, what="every call in the CRM")

    asterisk = Counter(call.outcome for call in truth.values())
    crm = Counter("answered" if rows[i].answered_at else "abandoned" for i in ids)
    print(  # the run's summary, shown with -s or on failure
        f"\ne2e: {summary.placed} calls placed; Asterisk queue_log {dict(asterisk)}; "
        f"CRM {dict(crm)}; simulator saw {summary.answered} answered, "
        f"{summary.abandoned} abandoned; intents {dict(summary.by_intent)}"
    )
    assert summary.placed == CALLS
    assert summary.failed == 0
    assert len(truth) == CALLS  # every call reached the queue after the IVR
    assert crm == asterisk
    assert summary.answered == asterisk["answered"]
    for linkedid, real in truth.items():
        row = rows[linkedid]
        plan = plans[linkedid]
        assert row.queue == real.queue
        assert row.caller_number == plan.number
        assert row.ivr_path, "the IVR's steps are on every call"
        assert row.routing["attributes"].get("intent") == plan.intent
        if real.outcome == "answered":
            assert row.agent_name == real.agent
